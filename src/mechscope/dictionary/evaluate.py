"""How good is an SAE: sparsity, reconstruction, and what splicing it into the model costs.

    result = evaluate_sae(sae, model, tokens)            # tokens [n_seq seq]
    result.ce_loss_recovered, result.l0, result.explained_variance, result.figure()

Splicing: the SAE's reconstruction replaces the activation at `sae.cfg.hook_name` through the
model's forward hooks. CE loss recovered = (CE_zero - CE_sae) / (CE_zero - CE_clean), where
CE_zero replaces the activation with zeros; 1 means the SAE loses nothing, 0 means it is as bad as
deleting the activation. KL is KL(clean || with SAE) of next-token distributions, mean per token.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mechscope.dictionary.base import SparseAutoencoder
from mechscope.dictionary.latent_stats import LatentStats
from mechscope.errors import InputError
from mechscope.model.interventions import zero_ablate
from mechscope.results import Result


@dataclasses.dataclass
class SAEEvaluation(Result):
    """Metrics of one SAE on a set of tokens (CE fields are NaN when evaluated on activations only)."""

    hook_name: str
    architecture: str
    d_sae: int
    n_tokens: int
    l0: float
    mse: float
    fvu: float
    explained_variance: float
    dead_fraction: float
    dense_fraction: float
    ce_clean: float = math.nan
    ce_with_sae: float = math.nan
    ce_zero_ablation: float = math.nan
    ce_loss_recovered: float = math.nan
    kl_with_sae: float = math.nan
    feature_density: list[float] = dataclasses.field(default_factory=list)  # per latent firing frequency

    _json_exclude = ("feature_density",)

    def to_dict(self):
        out = super().to_dict()
        log10 = np.log10(np.clip(np.asarray(self.feature_density, dtype=float), 1e-10, None))
        counts, edges = np.histogram(log10, bins=40, range=(-10, 0))
        out["feature_density_histogram"] = {"log10_edges": edges.tolist(), "counts": counts.tolist()}
        return out

    def figure(self):
        import plotly.graph_objects as go

        density = np.asarray(self.feature_density, dtype=float)
        alive = density[density > 0]
        fig = go.Figure(go.Histogram(x=np.log10(alive), nbinsx=50, name="latents"))
        fig.update_layout(
            title=(f"{self.hook_name or 'SAE'} ({self.architecture}, d_sae {self.d_sae}): feature density; "
                   f"{self.dead_fraction:.1%} dead, L0 {self.l0:.1f}, EV {self.explained_variance:.3f}"),
            xaxis_title="log10 firing frequency", yaxis_title="latents", height=360)
        return fig


def as_sae_input(act: Tensor, d_in: int) -> Tensor:
    """A hook activation [batch pos ...] as SAE input [batch pos d_in] (heads flattened for hook_z etc.)."""
    if act.shape[-1] == d_in:
        return act
    flat = act.reshape(*act.shape[:2], -1)
    if flat.shape[-1] != d_in:
        raise InputError(f"activation of shape {tuple(act.shape)} does not fit an SAE with d_in={d_in}; "
                         "train the SAE on this hook point (or check hook_name)")
    return flat


class _ReconstructionTotals:
    """Streaming sums for MSE / FVU over many batches of x, x_hat [n d]."""

    def __init__(self):
        self.n = 0
        self.sum_x = self.sum_sq = self.sum_err = self.sum_l0 = 0.0
        self.d = 0

    def add(self, x: Tensor, x_hat: Tensor, latents: Tensor) -> None:
        x, x_hat = x.double(), x_hat.double()
        self.d = x.shape[-1]
        self.n += x.shape[0]
        self.sum_x = self.sum_x + x.sum(0)
        self.sum_sq += float(x.pow(2).sum())
        self.sum_err += float((x - x_hat).pow(2).sum())
        self.sum_l0 += float((latents > 0).sum())

    def metrics(self) -> dict[str, float]:
        mean = self.sum_x / max(self.n, 1)
        total_var = self.sum_sq - self.n * float(mean.pow(2).sum()) if self.n else 0.0
        fvu = self.sum_err / total_var if total_var > 0 else math.nan
        return {"l0": self.sum_l0 / max(self.n, 1), "mse": self.sum_err / max(self.n * self.d, 1),
                "fvu": fvu, "explained_variance": 1 - fvu}


def _finish(sae: SparseAutoencoder, totals: _ReconstructionTotals, stats: LatentStats, hook_name: str = "",
            **extra) -> SAEEvaluation:
    freq = stats.frequencies()
    return SAEEvaluation(
        hook_name=hook_name or sae.cfg.hook_name, architecture=sae.cfg.architecture, d_sae=sae.d_sae, n_tokens=totals.n,
        dead_fraction=float((stats.fire_count == 0).float().mean()),
        dense_fraction=float(stats.dense_mask(0.1).float().mean()),
        feature_density=freq.tolist(), **totals.metrics(), **extra)


@torch.no_grad()
def evaluate_on_activations(sae: SparseAutoencoder, batches: Tensor | Iterable[Tensor]) -> SAEEvaluation:
    """Reconstruction and sparsity metrics on activations [n d_in] (or an iterable of such batches)."""
    if isinstance(batches, Tensor):
        batches = batches.reshape(-1, sae.d_in).split(4096)
    was_training = sae.training
    sae.eval()
    totals, stats = _ReconstructionTotals(), LatentStats(sae.d_sae)
    for x in batches:
        x = x.reshape(-1, sae.d_in).to(sae.W_enc.dtype)
        latents = sae.encode(x)
        totals.add(x, sae.decode(latents), latents)
        stats.update((latents > 0).sum(0), x.shape[0])
    sae.train(was_training)
    return _finish(sae, totals, stats)


def _next_token_ce(logits: Tensor, tokens: Tensor) -> Tensor:
    """Per-position next-token cross-entropy [batch pos-1]."""
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), tokens[:, 1:].flatten(), reduction="none")


@torch.no_grad()
def spliced_ce(model, tokens: Tensor, splice: dict, zero_hook: str, batch_size: int = 8) -> dict[str, float]:
    """Next-token CE of the clean model, with the `splice` hooks, and with `zero_hook` zeroed, over
    tokens [n_seq seq]; CE loss recovered and KL(clean || spliced), mean per predicted token."""
    ce = {"clean": 0.0, "spliced": 0.0, "zero": 0.0}
    kl_sum, n_pred = 0.0, 0
    for batch in tokens.split(batch_size):
        batch = batch.to(model.device)
        clean = model(batch)
        with model.hooks(fwd=splice):
            spliced = model(batch)
        with model.hooks(fwd={zero_hook: zero_ablate()}):
            zeroed = model(batch)
        for key, logits in (("clean", clean), ("spliced", spliced), ("zero", zeroed)):
            ce[key] += float(_next_token_ce(logits, batch).sum())
        logp_clean = clean[:, :-1].float().log_softmax(-1)
        logp_spliced = spliced[:, :-1].float().log_softmax(-1)
        kl_sum += float((logp_clean.exp() * (logp_clean - logp_spliced)).sum())
        n_pred += batch.shape[0] * (batch.shape[1] - 1)
    ce_clean, ce_spliced, ce_zero = (ce[k] / max(n_pred, 1) for k in ("clean", "spliced", "zero"))
    gap = ce_zero - ce_clean
    recovered = (ce_zero - ce_spliced) / gap if abs(gap) > 1e-9 else math.nan
    return {"ce_clean": ce_clean, "ce_with_sae": ce_spliced, "ce_zero_ablation": ce_zero,
            "ce_loss_recovered": recovered, "kl_with_sae": kl_sum / max(n_pred, 1)}


@torch.no_grad()
def evaluate_sae(sae: SparseAutoencoder, model, tokens: Tensor, hook_name: str | None = None,
                 batch_size: int = 8) -> SAEEvaluation:
    """All metrics of `sae` spliced into `model` at its hook, over tokens [n_seq seq] (no padding)."""
    hook_name = hook_name or sae.cfg.hook_name
    if not hook_name:
        raise InputError("the SAE has no hook_name; pass hook_name= to say where it reads activations")
    was_training = sae.training
    sae.eval()
    totals, stats = _ReconstructionTotals(), LatentStats(sae.d_sae)

    def splice(act, hook):
        x = as_sae_input(act, sae.d_in)
        latents = sae.encode(x)
        recon = sae.decode(latents)
        flat_x, flat_lat = x.reshape(-1, sae.d_in), latents.reshape(-1, sae.d_sae)
        totals.add(flat_x, recon.reshape(-1, sae.d_in), flat_lat)
        stats.update((flat_lat > 0).sum(0), flat_x.shape[0])
        return recon.reshape(act.shape).to(act.dtype)

    ce = spliced_ce(model, tokens, {hook_name: splice}, hook_name, batch_size)
    sae.train(was_training)
    return _finish(sae, totals, stats, hook_name=hook_name, **ce)
