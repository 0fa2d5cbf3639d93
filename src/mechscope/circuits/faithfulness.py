"""Faithfulness curves: how much of the behaviour circuits of growing size recover.

For a circuit C, normalised faithfulness is f(C) = (m(C) - m(empty)) / (m(full) - m(empty)), with
m the mean metric and ablated edges carrying the setup's ablation. Circuits are the top edges by
|score| (or grown greedily from the logits) at a grid of sizes, all evaluated by the engine,
several per forward. Summaries (MIB, Mueller et al. 2025):

    cpr   area under f against the fraction of edges kept (trapezoid over [0, 1]); higher = better
    cmd   area under |1 - f|; lower = better
    fraction_for[0.5 / 0.8 / 0.9]   the smallest measured fraction of edges with f >= that level

When |m(full) - m(empty)| is below `min_gap` the behaviour is absent: f is undefined and every
summary is NaN (never a number a verdict could read).
"""

from __future__ import annotations

import dataclasses
import math

import torch

from mechscope.circuits.attribution import EdgeScores
from mechscope.circuits.engine import CircuitSetup, mean_metric
from mechscope.circuits.selection import select
from mechscope.results import Result

LEVELS = (0.5, 0.8, 0.9)
DEFAULT_FRACTIONS = (0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7,
                     0.8, 0.9, 1.0)


@dataclasses.dataclass
class FaithfulnessCurve(Result):
    method: str
    ablation: str
    metric: str
    selection: str
    n_total_edges: int
    n_edges: list[int]
    n_nodes: list[int]
    metric_values: list[float]
    faithfulness: list[float]
    full_metric: float
    empty_metric: float
    cpr: float
    cmd: float
    fraction_for: dict[str, float]

    @property
    def fractions(self) -> list[float]:
        return [n / self.n_total_edges for n in self.n_edges]

    def figure(self):
        import plotly.graph_objects as go

        fig = go.Figure()
        fig.add_scatter(x=self.fractions, y=self.faithfulness, mode="lines+markers",
                        name=f"{self.method} ({self.selection})",
                        text=[f"{e} edges, {n} nodes" for e, n in zip(self.n_edges, self.n_nodes, strict=True)],
                        hovertemplate="%{text}<br>fraction %{x:.3f}<br>faithfulness %{y:.3f}<extra></extra>")
        fig.add_hline(y=1.0, line_dash="dot", line_color="grey")
        fig.update_layout(title=f"faithfulness vs circuit size ({self.ablation}; CPR {self.cpr:.3f}, "
                                f"CMD {self.cmd:.3f})", xaxis_title="fraction of edges kept",
                          yaxis_title="(m(C) - m(empty)) / (m(full) - m(empty))")
        return fig


def edge_counts(n_edges: int, fractions=DEFAULT_FRACTIONS) -> list[int]:
    return sorted({min(n_edges, max(0, round(f * n_edges))) for f in fractions} | {0, n_edges})


def _area(x: list[float], y: list[float]) -> float:
    return float(sum((x[i + 1] - x[i]) * (y[i + 1] + y[i]) / 2 for i in range(len(x) - 1)))


def summarise(fractions: list[float], faith: list[float]) -> tuple[float, float, dict[str, float]]:
    """(cpr, cmd, fraction_for) from a curve; NaN everywhere if any point is non-finite."""
    if not all(math.isfinite(f) for f in faith):
        return math.nan, math.nan, {str(level): math.nan for level in LEVELS}
    cpr = _area(fractions, faith)
    cmd = _area(fractions, [abs(1 - f) for f in faith])
    needed = {str(level): next((x for x, f in zip(fractions, faith, strict=True) if f >= level), math.nan)
              for level in LEVELS}
    return cpr, cmd, needed


def faithfulness_curve(setup: CircuitSetup, scores: EdgeScores, *, selection: str = "top-n",
                       counts: list[int] | None = None, min_gap: float = 1e-6) -> FaithfulnessCurve:
    g = setup.graph
    counts = counts if counts is not None else edge_counts(g.n_edges)
    masks = torch.stack([select(g, scores.scores, selection, n) for n in counts] + [g.full(), g.empty()])
    values = mean_metric(setup, masks).tolist()
    full, empty = values[-2], values[-1]
    gap = full - empty
    curve = values[:-2]
    faith = [(v - empty) / gap if abs(gap) > min_gap else math.nan for v in curve]
    kept = [int(m.sum()) for m in masks[:-2]]
    nodes = [len(g.nodes_of(m)) for m in masks[:-2]]
    fractions = [k / g.n_edges for k in kept]
    cpr, cmd, needed = summarise(fractions, faith)
    return FaithfulnessCurve(method=scores.method, ablation=setup.ablation, metric=setup.metric.name,
                             selection=selection, n_total_edges=g.n_edges, n_edges=kept, n_nodes=nodes,
                             metric_values=curve, faithfulness=faith, full_metric=full, empty_metric=empty,
                             cpr=cpr, cmd=cmd, fraction_for=needed)
