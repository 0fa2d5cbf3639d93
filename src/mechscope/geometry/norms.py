"""Residual-stream norm growth (Heimersheim & Turner 2023) and per-layer OV-circuit weight norms.

The mean L2 norm of the residual stream at each point (embedding, then after each block) is
averaged over positions 1.. (position 0 is often an outlier, "attention sink", and is reported
on its own). A line through log-norm against block index gives the growth factor per block and
its R²; the fit uses the block outputs only, as the embedding is on a different scale in many models.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np
import torch

from mechscope.data.text import token_batches
from mechscope.errors import InputError
from mechscope.geometry.fits import exponential_fit
from mechscope.model.cache import accumulated_resid_labels, accumulated_resid_names
from mechscope.progress import progress
from mechscope.results import Result


@dataclasses.dataclass
class NormGrowthResult(Result):
    """Per residual point (embed, after block 0, ...):

    mean_norm: mean ||resid|| over positions >= 1.   first_position_norm: mean ||resid|| at position 0.
    growth_factor, fit_r2: exponential fit of mean_norm over the block outputs (points 1..n_layers).
    ov_norm: [n_layers] mean over heads of ||W_V W_O||_F (Frobenius norm of each head's OV matrix).
    ov_norm_per_head: [n_layers][n_heads].
    """

    layer_labels: list[str]
    mean_norm: list[float]
    first_position_norm: list[float]
    growth_factor: float
    fit_r2: float
    fit_scale: float
    ov_norm: list[float]
    ov_norm_per_head: list[list[float]]
    n_tokens: int

    def figure(self):
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        fig = make_subplots(rows=1, cols=2, subplot_titles=("residual norm (log scale)", "OV weight norm per layer"))
        fig.add_trace(go.Scatter(x=self.layer_labels, y=self.mean_norm, mode="lines+markers",
                                 name="mean norm, positions ≥ 1"), 1, 1)
        fig.add_trace(go.Scatter(x=self.layer_labels, y=self.first_position_norm, mode="lines+markers",
                                 name="position 0", line={"dash": "dot"}), 1, 1)
        blocks = np.arange(len(self.layer_labels) - 1)
        fit = self.fit_scale * self.growth_factor ** blocks
        fig.add_trace(go.Scatter(x=self.layer_labels[1:], y=fit.tolist(), mode="lines",
                                 name=f"fit ×{self.growth_factor:.3f}/block, R²={self.fit_r2:.2f}",
                                 line={"dash": "dash"}), 1, 1)
        fig.add_trace(go.Bar(x=self.layer_labels[1:], y=self.ov_norm, name="mean ‖W_V W_O‖_F"), 1, 2)
        fig.update_yaxes(type="log", row=1, col=1)
        fig.update_xaxes(title_text="after block", row=1, col=1)
        fig.update_xaxes(title_text="block", row=1, col=2)
        fig.update_layout(title="norm growth through the residual stream")
        return fig


def ov_norms(model) -> torch.Tensor:
    """[n_layers n_heads] Frobenius norm of each head's OV matrix W_V[l,h] @ W_O[l,h] ([d_model d_model])."""
    w_v, w_o = model.W_V.float(), model.W_O.float()        # [l h d dh], [l h dh d]
    # ||W_V W_O||_F^2 = tr(W_O^T W_V^T W_V W_O) = sum((W_V^T W_V) * (W_O W_O^T))
    gram_v = w_v.transpose(-1, -2) @ w_v                     # [l h dh dh]
    gram_o = w_o @ w_o.transpose(-1, -2)                     # [l h dh dh]
    return (gram_v * gram_o).sum((-1, -2)).clamp_min(0).sqrt()


def residual_norms(model, tokens: torch.Tensor | Iterable[torch.Tensor], batch_size: int = 8
                   ) -> NormGrowthResult:
    """Mean residual norms per point over token batches [batch pos] (pos >= 2), and their growth fit."""
    n_layers = model.cfg.n_layers
    names = accumulated_resid_names(n_layers)
    sum_rest = torch.zeros(len(names), dtype=torch.float64)
    sum_first = torch.zeros(len(names), dtype=torch.float64)
    n_rest = n_first = 0
    for batch in progress(token_batches(tokens, batch_size), desc="residual norms"):
        if batch.shape[1] < 2:
            raise InputError("norm growth needs sequences of at least 2 tokens (position 0 is set apart)")
        _, cache = model.run_with_cache(batch.to(model.device), names=names)
        norms = cache.accumulated_resid().float().norm(dim=-1).double().cpu()   # [points batch pos]
        sum_first += norms[:, :, 0].sum(1)
        sum_rest += norms[:, :, 1:].sum((1, 2))
        n_first += norms.shape[1]
        n_rest += norms.shape[1] * (norms.shape[2] - 1)
    if n_rest == 0:
        raise InputError("norm growth got no tokens")
    mean = (sum_rest / n_rest).numpy()
    fit = exponential_fit(np.arange(n_layers), mean[1:]) if n_layers >= 2 else None
    per_head = ov_norms(model)
    return NormGrowthResult(
        layer_labels=accumulated_resid_labels(n_layers),
        mean_norm=mean.tolist(),
        first_position_norm=(sum_first / n_first).tolist(),
        growth_factor=fit.factor if fit else float("nan"),
        fit_r2=fit.r2 if fit else float("nan"),
        fit_scale=fit.scale if fit else float("nan"),
        ov_norm=per_head.mean(1).tolist(),
        ov_norm_per_head=per_head.tolist(),
        n_tokens=n_rest + n_first,
    )
