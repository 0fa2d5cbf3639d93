"""C04: an SAE on token + positional embeddings splits positions into "buckets".

We train a TopK SAE on x = W_E[t] + W_pos[p] for tokens t drawn from ordinary text and positions p
drawn uniformly, then read every latent on a full grid of (position, token) pairs. Because the grid
crosses every position with the same tokens, a two-way decomposition of each latent's activation
says how much of its variance is explained by position (eta2_pos) and by token (eta2_tok). A
*positional* latent has eta2_pos >= 0.5; its *bucket* is the set of positions where its mean
activation is at least half its peak, summarised by width and contiguity (width / span; 1 = one
unbroken range). A latent live at one position only (width 1) is trivially contiguous, so the
contiguity score and the bucket width are read over latents at least two positions wide ("buckets").

Null: the re-initialised twin (random W_E and W_pos: the SAE finds one latent per position, width 1,
so no buckets). Not applicable without learned positional embeddings.
Cost: one SAE training run of budget.train_steps steps on embedding sums, on the model and the twin.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from mechscope.claims.base import Budget, Measurement
from mechscope.data.text import token_stream
from mechscope.dictionary import SAEConfig
from mechscope.dictionary.pipeline import train_saes
from mechscope.dictionary.trainer import TrainerConfig
from mechscope.errors import NotApplicableError
from mechscope.results import Result

ID = "C04"
NULL = "twin"
READS = ("n_buckets", "mean_contiguity", "mean_bucket_width", "n_positions")
NULL_READS = ("n_buckets",)
MIN_BUCKETS, BUCKET_MARGIN = 3, 3
RULE = ("Not applicable without learned positional embeddings. A latent is positional if position explains "
        "≥ 50% of its activation variance on the (position × token) grid; its bucket is the positions at ≥ half its "
        "peak mean activation, and a bucket is at least 2 positions wide (one-position latents are set apart: "
        "they are contiguous trivially). Supported if there are ≥ 3 buckets, ≥ 3 more than on the re-initialised "
        "twin, with mean contiguity ≥ 0.8 and mean width ≤ half the positions; not supported if there are no "
        "buckets or their mean contiguity is < 0.5 (one latent per position, as on random embeddings, is no "
        "bucket); otherwise inconclusive.")
MAX_POSITIONS = 256


@dataclasses.dataclass
class PositionalBuckets(Result):
    """profiles [n_positional n_pos]: mean activation per position of each positional latent (bucket order)."""

    n_positions: int
    n_latents_alive: int
    positional_latents: list[int]
    token_latents: int
    mixed_latents: int
    widths: list[int]
    contiguity: list[float]
    starts: list[int]
    coverage: float
    fvu: float
    profiles: list[list[float]]

    _json_exclude = ("profiles",)

    @property
    def buckets(self) -> list[int]:
        """Indices (into widths/contiguity) of positional latents at least two positions wide."""
        return [i for i, w in enumerate(self.widths) if w >= 2]

    @property
    def mean_width(self) -> float:
        """Mean width of the buckets (latents >= 2 positions wide); 0 when there are none."""
        return float(np.mean([self.widths[i] for i in self.buckets])) if self.buckets else 0.0

    @property
    def mean_contiguity(self) -> float:
        """Mean contiguity of the buckets (one-position latents left out); 0 when there are none."""
        return float(np.mean([self.contiguity[i] for i in self.buckets])) if self.buckets else 0.0

    def figure(self):
        import plotly.graph_objects as go

        fig = go.Figure(go.Heatmap(z=self.profiles, x=list(range(self.n_positions)),
                                   y=[f"latent {i}" for i in self.positional_latents], colorscale="Viridis"))
        fig.update_layout(title=f"Positional SAE latents: mean activation by position ({len(self.widths)} latents, "
                                f"mean bucket width {self.mean_width:.1f})",
                          xaxis_title="position", height=max(300, 14 * len(self.widths) + 120))
        return fig


def verdict(metrics: dict, null: dict | None) -> str:
    n, contiguity = metrics["n_buckets"], metrics["mean_contiguity"]
    if n == 0 or contiguity < 0.5:
        return "not supported"
    beyond_twin = null is not None and n >= null["n_buckets"] + BUCKET_MARGIN
    if n >= MIN_BUCKETS and contiguity >= 0.8 and metrics["mean_bucket_width"] <= metrics["n_positions"] / 2 \
            and beyond_twin:
        return "supported"
    return "inconclusive"


def _bucket(profile: np.ndarray) -> tuple[int, float, int]:
    """(width, contiguity, start) of positions at >= half the peak of a mean-activation profile."""
    on = np.nonzero(profile >= 0.5 * profile.max())[0]
    span = on[-1] - on[0] + 1
    return int(on.size), float(on.size / span), int(on[0])


@torch.no_grad()
def _grid_analysis(sae, W_E, W_pos, grid_tokens: torch.Tensor) -> PositionalBuckets:
    n_pos, n_tok = W_pos.shape[0], grid_tokens.numel()
    x = (W_pos[:, None, :] + W_E[grid_tokens][None, :, :]).reshape(-1, W_E.shape[1])
    sae.eval()
    out = sae(x)
    acts = out.latents.reshape(n_pos, n_tok, -1).double()  # [pos tok latent]
    total = acts.var(dim=(0, 1), unbiased=False)
    alive = (acts > 0).double().mean((0, 1)) >= 1e-3
    eta_pos = acts.mean(1).var(0, unbiased=False) / total.clamp_min(1e-12)
    eta_tok = acts.mean(0).var(0, unbiased=False) / total.clamp_min(1e-12)
    positional = (alive & (eta_pos >= 0.5)).nonzero().squeeze(-1).tolist()
    profiles = acts.mean(1)[:, positional].T.cpu().numpy() if positional else np.zeros((0, n_pos))
    buckets = [_bucket(p) for p in profiles]
    order = np.argsort([b[2] + b[0] / 2 for b in buckets]) if buckets else np.array([], dtype=int)
    covered = np.zeros(n_pos, dtype=bool)
    for p in profiles:
        covered |= p >= 0.5 * p.max()
    return PositionalBuckets(
        n_positions=n_pos, n_latents_alive=int(alive.sum()),
        positional_latents=[positional[i] for i in order],
        token_latents=int((alive & (eta_tok >= 0.5)).sum()),
        mixed_latents=int((alive & (eta_tok >= 0.2) & (eta_pos >= 0.2)).sum()),
        widths=[buckets[i][0] for i in order], contiguity=[round(buckets[i][1], 4) for i in order],
        starts=[buckets[i][2] for i in order], coverage=float(covered.mean()), fvu=float(out.fvu),
        profiles=[profiles[i].round(4).tolist() for i in order],
    )


def measure(model, budget: Budget) -> Measurement:
    if model.cfg.positional != "learned" or model.W_pos is None:
        raise NotApplicableError(f"The model has {model.cfg.positional} positions, not a learned W_pos to decompose.")
    W_E = model.W_E.detach().float().cpu()
    W_pos = model.W_pos.detach().float().cpu()[:MAX_POSITIONS]
    n_pos, d = W_pos.shape
    gen = torch.Generator().manual_seed(budget.seed)
    stream = token_stream(model)
    stream = stream[stream < W_E.shape[0]]
    batch = 512

    def batches():
        while True:
            t = stream[torch.randint(0, stream.numel(), (batch,), generator=gen)]
            p = torch.randint(0, n_pos, (batch,), generator=gen)
            yield W_E[t] + W_pos[p]

    sae_cfg = SAEConfig(d_in=d, d_sae=4 * d, architecture="topk", k=8, seed=budget.seed,
                        dead_after_tokens=20 * batch, hook_name="hook_embed+hook_pos_embed")
    saes, _ = train_saes({"embeddings": sae_cfg}, batches(),
                         TrainerConfig(steps=budget.train_steps, lr=2e-3, warmup_steps=10))
    sae = saes["embeddings"]
    grid_tokens = stream[torch.randint(0, stream.numel(), (32,), generator=gen)]
    r = _grid_analysis(sae, W_E, W_pos, grid_tokens)
    n = len(r.positional_latents)
    n_buckets = len(r.buckets)
    return Measurement(
        metrics={"n_buckets": n_buckets, "n_positional_latents": n, "mean_bucket_width": round(r.mean_width, 2),
                 "mean_contiguity": round(r.mean_contiguity, 3),
                 "single_position_latents": n - n_buckets,
                 "position_coverage": round(r.coverage, 3), "token_latents": r.token_latents,
                 "mixed_latents": r.mixed_latents, "latents_alive": r.n_latents_alive, "d_sae": sae.d_sae,
                 "n_positions": n_pos, "fvu": round(r.fvu, 4), "bucket_widths": r.widths,
                 "bucket_starts": r.starts},
        key_metric="n_buckets",
        evidence=(f"{n} of {r.n_latents_alive} live latents are positional (position explains ≥ 50% of their "
                  f"variance); {n_buckets} of them cover ≥ 2 positions, {r.mean_width:.1f} positions wide on average "
                  f"with contiguity "
                  f"{r.mean_contiguity:.2f}, together covering {r.coverage:.0%} of {n_pos} positions. "
                  f"{r.token_latents} latents are token latents and {r.mixed_latents} mix both."
                  if n else f"No latent is positional; {r.token_latents} of {r.n_latents_alive} live latents are token latents."),
        method=(f"TopK SAE (k=8, {sae.d_sae} latents) trained {budget.train_steps} steps × {batch} on W_E[t] + W_pos[p] "
                f"with t sampled from the bundled text and p uniform over {n_pos} positions; then evaluated on the "
                f"full grid of {n_pos} positions × 32 tokens, splitting each latent's activation variance into "
                "position and token parts."),
        figures=[r.figure()],
    )
