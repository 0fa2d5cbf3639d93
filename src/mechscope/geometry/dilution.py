"""Norm dilution: a direction written early shrinks in relative weight as the residual norm grows.

Take, at every token, the vector written at one early point: the embedding (source_point 0) or
block k's output (source_point k + 1: resid_post[k] - resid_pre[k]). Call its unit direction u and
its length w. At each later point L we measure, averaged over tokens (positions >= 1):

    share[L]     = <resid_L, u> / ||resid_L||      how much of the stream the early direction still is
    retained[L]  = <resid_L, u> / w                 how much of the written component is still there
    nominal[L]   = w / ||resid_L||                  the share it would have if nothing touched it

share falling while retained stays near 1 is dilution by growth rather than deletion.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import torch

from mechscope.data.text import token_batches
from mechscope.errors import InputError
from mechscope.model.cache import accumulated_resid_labels, accumulated_resid_names
from mechscope.progress import progress
from mechscope.results import Result


@dataclasses.dataclass
class DilutionResult(Result):
    """Per residual point from the source on (labels as in the logit lens); see module docstring."""

    source: str
    layer_labels: list[str]
    share: list[float]
    retained: list[float]
    nominal_share: list[float]
    norm_ratio: list[float]         # mean ||resid_L|| / mean ||resid_source||
    n_tokens: int

    def figure(self):
        import plotly.graph_objects as go

        fig = go.Figure()
        for name, ys in (("share of the stream  <r,u>/‖r‖", self.share),
                         ("retained component  <r,u>/w", self.retained),
                         ("nominal share  w/‖r‖", self.nominal_share)):
            fig.add_trace(go.Scatter(x=self.layer_labels, y=ys, name=name, mode="lines+markers"))
        fig.update_layout(title=f"dilution of the direction written at {self.source}",
                          xaxis_title="after block", yaxis_title="ratio")
        return fig


def norm_dilution(model, tokens: torch.Tensor | Iterable[torch.Tensor], source_point: int = 0,
                  batch_size: int = 8) -> DilutionResult:
    """Track the direction written at `source_point` (0 = embedding, k+1 = block k's output)."""
    n_layers = model.cfg.n_layers
    if not 0 <= source_point < n_layers:
        raise InputError(f"source_point must be in 0..{n_layers - 1} (0 = embedding, k+1 = block k's write) "
                         f"so that at least one later block exists")
    names = accumulated_resid_names(n_layers)
    later = len(names) - source_point
    sums = {key: torch.zeros(later, dtype=torch.float64) for key in ("share", "retained", "nominal", "norm")}
    n = 0
    for batch in progress(token_batches(tokens, batch_size), desc="dilution"):
        _, cache = model.run_with_cache(batch.to(model.device), names=names)
        resid = cache.accumulated_resid()[:, :, 1:].float()         # [points batch pos-1 d]
        del cache
        written = resid[source_point] - (resid[source_point - 1] if source_point > 0 else 0)
        w = written.norm(dim=-1).clamp_min(1e-12)                        # [batch pos-1]
        u = written / w[..., None]
        stream = resid[source_point:]                                    # [later batch pos-1 d]
        along = (stream * u).sum(-1)
        norm = stream.norm(dim=-1).clamp_min(1e-12)
        sums["share"] += (along / norm).double().sum((1, 2)).cpu()
        sums["retained"] += (along / w).double().sum((1, 2)).cpu()
        sums["nominal"] += (w / norm).double().sum((1, 2)).cpu()
        sums["norm"] += norm.double().sum((1, 2)).cpu()
        n += w.numel()
    if n == 0:
        raise InputError("dilution needs sequences of at least 2 tokens")
    means = {key: (value / n) for key, value in sums.items()}
    labels = accumulated_resid_labels(n_layers)
    return DilutionResult(
        source=labels[source_point] if source_point == 0 else f"block {source_point - 1}",
        layer_labels=labels[source_point:],
        share=means["share"].tolist(), retained=means["retained"].tolist(),
        nominal_share=means["nominal"].tolist(),
        norm_ratio=(means["norm"] / means["norm"][0]).tolist(), n_tokens=n,
    )
