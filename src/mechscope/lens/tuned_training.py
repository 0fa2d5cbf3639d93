"""Training a tuned lens: minimise KL(final || lens) at every point, model frozen; checkpoints and resumes.

The residual stream at every point is computed once for all training tokens and kept in memory
when it fits in `cache_mb` (otherwise each step runs the model on the next batch). Each step
samples `tokens_per_step` positions (seeded by step, so a resumed run sees the same data as an
uninterrupted one) and updates all translators together; sampling keeps a step cheap on large
vocabularies, where the unembedding dominates.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

import torch

from mechscope.data.text import token_batches
from mechscope.errors import CheckpointError, InputError
from mechscope.io import atomic_path
from mechscope.lens.logit_lens import LogitLensConfig, LogitLensResult, run_lens
from mechscope.lens.tuned_lens import TunedLens
from mechscope.model.cache import accumulated_resid_names
from mechscope.progress import progress
from mechscope.results import Result

STATE_FILE = "training_state.pt"


@dataclasses.dataclass
class TunedLensTrainConfig:
    steps: int = 200
    lr: float = 1e-3
    tokens_per_step: int = 256     # positions sampled from each batch
    checkpoint_every: int = 50     # steps between checkpoints (when a directory is given)
    cache_mb: int = 512            # keep all training activations in memory up to this size
    seed: int = 0


@dataclasses.dataclass
class TunedLensTraining(Result):
    """What training did: the loss (mean KL over points, nats) every step, and where it resumed."""

    steps: int
    resumed_from: int
    losses: list[float]

    def figure(self):
        import plotly.graph_objects as go

        x = list(range(self.resumed_from + 1, self.resumed_from + len(self.losses) + 1))
        fig = go.Figure(go.Scatter(x=x, y=self.losses, mode="lines"))
        fig.update_layout(title="tuned lens training", xaxis_title="step", yaxis_title="mean KL to final (nats)")
        return fig


@contextmanager
def frozen(module: torch.nn.Module):
    """Turn off requires_grad on every parameter of `module`; restore the flags on exit."""
    params = list(module.parameters())
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        yield module
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)


def lens_kl(model, lens: TunedLens, resid: torch.Tensor) -> torch.Tensor:
    """Mean over points and rows of KL(final || lens); resid [n_points n d_model], final = last point."""
    with torch.no_grad():
        final = torch.log_softmax(model.unembed(model.ln_final(resid[-1])).float(), dim=-1)
    total = resid.new_zeros((), dtype=torch.float32)
    for point in range(resid.shape[0] - 1):  # the last point's translator gets no signal: KL is 0 there
        lp = torch.log_softmax(model.unembed(model.ln_final(lens.translate(point, resid[point]))).float(), -1)
        total = total + (final.exp() * (final - lp)).sum(-1).mean()
    return total / max(resid.shape[0] - 1, 1)


def train_tuned_lens(model, tokens: torch.Tensor | Iterable[torch.Tensor],
                     cfg: TunedLensTrainConfig | None = None, lens: TunedLens | None = None,
                     checkpoint_dir: str | Path | None = None) -> tuple[TunedLens, TunedLensTraining]:
    """Train (or, with a checkpoint in `checkpoint_dir`, resume training) a tuned lens.

    tokens: [n pos] or batches [batch pos]; they are held in memory.
    Returns the lens and a training record. With `checkpoint_dir` the lens (safetensors + json)
    and the optimiser state are saved every `checkpoint_every` steps and at the end.
    """
    cfg = cfg or TunedLensTrainConfig()
    batches = [b.to(model.device) for b in token_batches(tokens)]
    if not batches:
        raise InputError("no training tokens given to the tuned lens")
    lens = lens if lens is not None else TunedLens.for_model(model)
    optimizer = torch.optim.Adam(lens.parameters(), lr=cfg.lr)
    start = 0
    if checkpoint_dir is not None and (Path(checkpoint_dir) / STATE_FILE).exists():
        lens = TunedLens.load(checkpoint_dir, model)
        optimizer = torch.optim.Adam(lens.parameters(), lr=cfg.lr)
        start = _load_state(Path(checkpoint_dir) / STATE_FILE, optimizer)
    names = accumulated_resid_names(model.cfg.n_layers)
    n_points = len(names)

    def residuals(batch: torch.Tensor) -> torch.Tensor:          # [points batch*pos d]
        with torch.no_grad():
            _, cache = model.run_with_cache(batch, names=names)
        return cache.accumulated_resid().flatten(1, 2)

    n_tokens = sum(b.numel() for b in batches)
    pool = None
    if n_tokens * n_points * model.cfg.d_model * 4 <= cfg.cache_mb * 2**20:
        pool = torch.cat([residuals(b) for b in batches], dim=1)
    losses: list[float] = []
    with frozen(model.hf_model):
        for step in progress(range(start, cfg.steps), desc="tuned lens", total=cfg.steps, initial=start):
            resid = pool if pool is not None else residuals(batches[step % len(batches)])
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
            rows = torch.randperm(resid.shape[1], generator=gen)[:cfg.tokens_per_step].to(resid.device)
            loss = lens_kl(model, lens, resid[:, rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            done = step + 1
            if checkpoint_dir is not None and (done % cfg.checkpoint_every == 0 or done == cfg.steps):
                save_checkpoint(checkpoint_dir, lens, optimizer, done)
    return lens, TunedLensTraining(steps=cfg.steps, resumed_from=start, losses=losses)


def save_checkpoint(directory: str | Path, lens: TunedLens, optimizer, step: int) -> None:
    """Lens weights + optimiser state + step, each file written atomically (state last)."""
    directory = Path(directory)
    lens.save(directory)
    with atomic_path(directory / STATE_FILE) as tmp:
        torch.save({"step": step, "optimizer": optimizer.state_dict()}, tmp)


def _load_state(path: Path, optimizer) -> int:
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
        optimizer.load_state_dict(state["optimizer"])
        return int(state["step"])
    except Exception as err:
        raise CheckpointError(f"training state {path} is unreadable ({err}); delete it to restart training") from err


@dataclasses.dataclass
class LensComparison(Result):
    """Logit lens vs tuned lens per residual point on held-out tokens (nats)."""

    layer_labels: list[str]
    logit_kl: list[float]
    tuned_kl: list[float]
    logit_ce: list[float]
    tuned_ce: list[float]
    final_ce: float

    @property
    def tuned_wins_everywhere(self) -> bool:
        """Tuned KL <= logit KL at every point but the last (where both are the model itself)."""
        return all(t <= lo + 1e-6 for t, lo in zip(self.tuned_kl[:-1], self.logit_kl[:-1], strict=True))

    def figure(self):
        import plotly.graph_objects as go

        fig = go.Figure()
        for name, ys, dash in (("logit lens KL", self.logit_kl, "solid"), ("tuned lens KL", self.tuned_kl, "solid"),
                               ("logit lens CE", self.logit_ce, "dot"), ("tuned lens CE", self.tuned_ce, "dot")):
            fig.add_trace(go.Scatter(x=self.layer_labels, y=ys, name=name, mode="lines+markers",
                                     line={"dash": dash}))
        fig.add_hline(y=self.final_ce, line_dash="dash", annotation_text="model CE")
        fig.update_layout(title="logit lens vs tuned lens", xaxis_title="after block", yaxis_title="nats")
        return fig


def compare_lenses(model, lens: TunedLens, tokens, cfg: LogitLensConfig | None = None
                   ) -> tuple[LensComparison, LogitLensResult, LogitLensResult]:
    """Evaluate the logit lens and `lens` on the same held-out tokens (materialised once)."""
    batches = list(token_batches(tokens, (cfg or LogitLensConfig()).batch_size))
    logit = run_lens(model, batches, cfg, lens_name="logit lens")
    with torch.no_grad():
        tuned = run_lens(model, batches, cfg, translate=lens.translate, lens_name="tuned lens")
    return LensComparison(layer_labels=logit.layer_labels, logit_kl=logit.kl_to_final, tuned_kl=tuned.kl_to_final,
                          logit_ce=logit.ce, tuned_ce=tuned.ce, final_ce=logit.final_ce), logit, tuned
