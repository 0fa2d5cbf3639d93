"""Are later features boolean gates of earlier ones (claim C15; Balcells et al. 2024)?

For each child latent (a later layer) take two parent latents (the layer before), found by
co-activation or given (e.g. by attribution), and tabulate P(child on | a, b) over the four
on/off combinations of the parents. The table is matched to the truth table of each gate:

    pass-through   child = a  (or = b)   P = [0, 0, 1, 1] over (a, b) = 00, 01, 10, 11
    AND            child = a AND b        P = [0, 0, 0, 1]
    OR             child = a OR b         P = [0, 1, 1, 1]

and classified as the closest one if every cell is within `tolerance` of it (cells seen fewer than
`min_count` times make the child "undetermined"), else "other". Parents by co-activation: the two
latents with the highest P(a | child) + P(child | a), which is 2 for a pass-through parent and
about 1.5 for each input of an AND or OR gate, and P(a) + P(child) for an unrelated latent.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from mechscope.errors import InputError
from mechscope.results import Result

TEMPLATES: dict[str, tuple[float, float, float, float]] = {
    "pass-through": (0, 0, 1, 1), "pass-through-b": (0, 1, 0, 1), "AND": (0, 0, 0, 1), "OR": (0, 1, 1, 1)}
KINDS = ("pass-through", "AND", "OR", "other", "undetermined")


def conditional_table(child: Tensor, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """child, a, b [n] bool -> (P(child | a, b) [4], counts [4]) over (a, b) = 00, 01, 10, 11."""
    cell = a.long() * 2 + b.long()
    counts = torch.bincount(cell, minlength=4)
    on = torch.bincount(cell, weights=child.double(), minlength=4)
    return on / counts.clamp_min(1), counts


def classify_table(table: Tensor, counts: Tensor, tolerance: float = 0.2, min_count: int = 5) -> tuple[str, float]:
    """The gate a 2x2 conditional table [4] matches, and its largest deviation from it."""
    if bool((counts < min_count).any()):
        return "undetermined", float("nan")
    best, dev = "other", float("inf")
    for kind, template in TEMPLATES.items():
        d = float((table - torch.tensor(template, dtype=table.dtype)).abs().max())
        if d < dev:
            best, dev = kind, d
    if dev > tolerance:
        return "other", dev
    return ("pass-through" if best.startswith("pass") else best), dev


def coactivation_parents(child_on: Tensor, parent_on: Tensor, n: int = 2) -> Tensor:
    """child_on [tokens n_child], parent_on [tokens n_parent] bool -> the n best parents [n_child n]."""
    c, p = child_on.double(), parent_on.double()
    both = c.T @ p                                                   # [n_child n_parent]
    p_parent_given_child = both / c.sum(0).clamp_min(1)[:, None]
    p_child_given_parent = both / p.sum(0).clamp_min(1)[None, :]
    return (p_parent_given_child + p_child_given_parent).topk(n, dim=-1).indices


@dataclasses.dataclass
class GateAnalysis(Result):
    """kind[i], parents[i] = (a, b), table[i] = P(child on | a, b) for (a, b) = 00, 01, 10, 11."""

    children: list[int]
    parents: list[list[int]]
    kinds: list[str]
    tables: list[list[float]]
    deviations: list[float]

    _json_exclude = ("tables", "deviations")

    def counts(self) -> dict[str, int]:
        return {k: self.kinds.count(k) for k in KINDS}

    @property
    def share_gates(self) -> float:
        """Share of determined children that are AND or OR gates (pass-through is not a gate)."""
        determined = [k for k in self.kinds if k != "undetermined"]
        return sum(k in ("AND", "OR") for k in determined) / len(determined) if determined else float("nan")

    @property
    def share_explained(self) -> float:
        """Share of determined children classified as pass-through, AND or OR."""
        determined = [k for k in self.kinds if k != "undetermined"]
        return sum(k != "other" for k in determined) / len(determined) if determined else float("nan")

    def to_dict(self):
        out = super().to_dict()
        out.update(counts=self.counts(), share_gates=self.share_gates, share_explained=self.share_explained)
        return out

    def figure(self):
        import plotly.graph_objects as go

        counts = self.counts()
        fig = go.Figure(go.Bar(x=list(counts), y=list(counts.values())))
        fig.update_layout(title=f"gate classes of {len(self.kinds)} later latents: {self.share_gates:.0%} AND/OR, "
                                f"{self.share_explained:.0%} explained", yaxis_title="latents", height=340)
        return fig


def classify_gates(child_on: Tensor, parent_on: Tensor, parents: Tensor | None = None, *,
                   tolerance: float = 0.2, min_count: int = 5) -> GateAnalysis:
    """Gate class of every child latent. child_on [tokens n_child], parent_on [tokens n_parent] bool;
    parents [n_child 2] indices into parent_on, or None to find them by co-activation."""
    if child_on.shape[0] != parent_on.shape[0]:
        raise InputError(f"child_on has {child_on.shape[0]} tokens, parent_on {parent_on.shape[0]}; use the same tokens")
    child_on, parent_on = child_on.bool(), parent_on.bool()
    if parents is None:
        parents = coactivation_parents(child_on, parent_on)
    kinds, tables, devs = [], [], []
    for i in range(child_on.shape[1]):
        a, b = parents[i].tolist()
        table, counts = conditional_table(child_on[:, i], parent_on[:, a], parent_on[:, b])
        kind, dev = classify_table(table, counts, tolerance, min_count)
        kinds.append(kind)
        tables.append([round(float(v), 4) for v in table])
        devs.append(dev)
    return GateAnalysis(list(range(child_on.shape[1])), parents.tolist(), kinds, tables, devs)


def latents_on(acts: Tensor, relative: float = 0.3) -> Tensor:
    """acts [tokens n_latents] -> [tokens n_latents] bool: each latent counts as on where it exceeds
    `relative` times its own largest activation on these tokens. A ReLU latent also fires weakly where
    its feature is absent (interference from other features); on compiled-boolean a bare `> 0` puts
    the learned input latents at 84% agreement with the planted features, this at 100%."""
    return acts > relative * acts.max(0).values.clamp_min(torch.finfo(acts.dtype).tiny)


def best_matching_latents(truth_on: Tensor, latent_on: Tensor) -> tuple[Tensor, Tensor]:
    """truth_on [tokens n_true], latent_on [tokens n_latents] bool -> for each true variable the latent
    whose on/off agrees with it on most tokens, and that agreement: (indices [n_true], agreement [n_true])."""
    agree = (truth_on[:, :, None] == latent_on[:, None, :]).double().mean(0)     # [n_true n_latents]
    best = agree.max(-1)
    return best.indices, best.values


@dataclasses.dataclass
class PlantedGateScore:
    """How a GateAnalysis of learned latents compares with planted gates.

    recovered[g]: gate g's best-matching child latent has the planted kind and, as its two parents,
        the latents that best match the gate's two planted input features.
    false_gates: children called AND or OR that are not a recovered planted gate.
    """

    recovered: list[bool]
    n_called: int
    false_gates: int

    @property
    def n_recovered(self) -> int:
        return sum(self.recovered)

    @property
    def false_gate_share(self) -> float:
        return self.false_gates / self.n_called if self.n_called else 0.0


def score_planted_gates(analysis: GateAnalysis, gate_child: list[int], kinds: list[str],
                        gate_parents: list[list[int]], feature_latent: list[int]) -> PlantedGateScore:
    """gate_child[g]: the child (an index into analysis.children) standing for planted gate g (-1: none);
    kinds[g], gate_parents[g]: its planted kind and input features; feature_latent[f]: the parent latent
    standing for planted feature f."""
    recovered = []
    for child, kind, parents in zip(gate_child, kinds, gate_parents, strict=True):
        want = sorted(feature_latent[f] for f in parents)
        recovered.append(child >= 0 and analysis.kinds[child] == kind and sorted(analysis.parents[child]) == want)
    hits = {c for c, ok in zip(gate_child, recovered, strict=True) if ok}
    called = [i for i, k in enumerate(analysis.kinds) if k in ("AND", "OR")]
    return PlantedGateScore(recovered, len(called), sum(i not in hits for i in called))
