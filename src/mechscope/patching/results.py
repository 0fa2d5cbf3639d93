"""Result types of patching: grids of normalised effects, attribution estimates and their agreement."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from mechscope.figures import safe_tokens
from mechscope.results import Result


def _heatmap(values: torch.Tensor, axes: tuple[str, ...], title: str, pos_labels: list[str], zlabel: str,
             row_labels: list | None = None):
    import plotly.graph_objects as go

    v = values
    if v.dim() == 3:          # [layer head pos] -> show the sum over positions
        v = v.sum(-1)
        axes = axes[:2]
    if v.dim() == 1:
        fig = go.Figure(go.Bar(y=v.tolist()))
        fig.update_layout(title=title, xaxis_title="site", yaxis_title=zlabel)
        return fig
    use_labels = axes[1] == "pos" and len(pos_labels) == v.shape[1]
    x = safe_tokens(pos_labels, show_whitespace=True) if use_labels else list(range(v.shape[1]))
    limit = float(v.abs().max()) if v.numel() else 1.0
    y = [str(r) for r in row_labels] if row_labels and len(row_labels) == v.shape[0] else list(range(v.shape[0]))
    fig = go.Figure(go.Heatmap(z=v.tolist(), x=x, y=y, colorscale="RdBu",
                               zmid=0, zmin=-limit, zmax=limit, colorbar={"title": zlabel}))
    fig.update_layout(title=title, xaxis_title=axes[1], yaxis_title=axes[0])
    return fig


@dataclasses.dataclass
class PatchingResult(Result):
    """values: fraction of the clean-corrupt gap each site carries (see activation.py), shaped by
    `axes` (e.g. ("layer", "pos") -> [n_layers n_pos]); patched_metric: mean metric of each
    patched run, same shape."""

    task: str
    site: str
    direction: str
    metric: str
    axes: tuple[str, ...]
    values: torch.Tensor
    patched_metric: torch.Tensor
    clean_metric: float
    corrupt_metric: float
    n_prompts: int
    pos_labels: list[str] = dataclasses.field(default_factory=list)
    sites: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    layers: list[int] = dataclasses.field(default_factory=list)   # the layer of each grid row (grid axes only)

    def top(self, k: int = 5) -> list[tuple[tuple[int, ...], float]]:
        """The k entries with the largest |value|: [(index tuple, value)]."""
        flat = self.values.reshape(-1)
        order = flat.abs().argsort(descending=True)[:k]
        return [(tuple(int(i) for i in torch.unravel_index(o, self.values.shape)), float(flat[o]))
                for o in order]

    def figure(self):
        return _heatmap(self.values, self.axes, f"{self.task}: {self.direction} patching of {self.site}",
                        self.pos_labels, "fraction of effect", self.layers)


@dataclasses.dataclass
class Agreement(Result):
    """How well attribution estimates match exact patching on the same sites."""

    site: str
    pearson: float
    spearman: float
    sign_agreement: float
    top_k_overlap: float
    k: int
    max_abs_error: float

    def figure(self):
        import plotly.graph_objects as go

        names = ["pearson", "spearman", "sign_agreement", "top_k_overlap"]
        fig = go.Figure(go.Bar(x=names, y=[getattr(self, n) for n in names]))
        fig.update_layout(title=f"attribution vs exact patching ({self.site})", yaxis_range=[-1, 1])
        return fig


@dataclasses.dataclass
class AttributionResult(Result):
    """Linear estimates of patching effects, one per site, in the same units as PatchingResult.

    values[site]: tensor shaped like the exact grid (e.g. [n_layers n_pos] for "resid_pre",
    [n_layers n_heads] for "z"); agreement[site]: comparison with exact patching when computed.
    """

    _json_exclude = ()

    task: str
    direction: str
    metric: str
    values: dict[str, torch.Tensor]
    clean_metric: float
    corrupt_metric: float
    n_prompts: int
    n_forward: int
    n_backward: int
    pos_labels: list[str] = dataclasses.field(default_factory=list)
    agreement: dict[str, Agreement] = dataclasses.field(default_factory=dict)

    def figure(self):
        from plotly.subplots import make_subplots

        sites = list(self.values)
        fig = make_subplots(rows=1, cols=len(sites), subplot_titles=sites)
        for i, s in enumerate(sites, start=1):
            axes = ("layer", "pos") if self.values[s].dim() == 2 and s not in ("z", "q", "k", "v") else ("layer", "head")
            sub = _heatmap(self.values[s], axes, s, self.pos_labels, "estimate")
            fig.add_trace(sub.data[0].update(showscale=i == len(sites)), row=1, col=i)
        fig.update_layout(title=f"{self.task}: attribution patching ({self.direction})")
        return fig


def agreement(site: str, estimate: torch.Tensor, exact: torch.Tensor, k: int = 10) -> Agreement:
    """Pearson / Spearman correlation, sign agreement on sites with a real effect, top-k overlap."""
    a = estimate.reshape(-1).double()
    b = exact.reshape(-1).double()

    def corr(x, y):
        x, y = x - x.mean(), y - y.mean()
        denom = (x.norm() * y.norm()).item()
        return float((x @ y).item() / denom) if denom > 0 else float("nan")

    def ranks(x):
        return x.argsort().argsort().double()

    k = min(k, a.numel())
    big = b.abs() > 0.05 * float(b.abs().max()) if b.numel() else b.bool()
    sign = float((a[big].sign() == b[big].sign()).double().mean()) if big.any() else float("nan")
    top_a = set(a.abs().argsort(descending=True)[:k].tolist())
    top_b = set(b.abs().argsort(descending=True)[:k].tolist())
    return Agreement(site=site, pearson=corr(a, b), spearman=corr(ranks(a), ranks(b)), sign_agreement=sign,
                     top_k_overlap=len(top_a & top_b) / max(k, 1), k=k,
                     max_abs_error=float((a - b).abs().max()) if a.numel() else 0.0)
