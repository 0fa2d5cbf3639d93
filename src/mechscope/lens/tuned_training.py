"""Training a tuned lens: minimise KL(final || lens) at every point, model frozen; checkpoints and resumes.

The residual stream at the trained points is computed once for all training tokens and kept in
memory when it fits in `cache_mb` (otherwise each step runs the model on the next batch). Each step
samples `tokens_per_step` positions (seeded by step, so a resumed run sees the same data as an
uninterrupted one) and updates all trained translators together.

Cost model, per step: P trained points x T tokens_per_step x d_model x V' multiply-adds for the
unembedding, forward and backward (about 3x), where V' = d_vocab, or `vocab_sample` when set
(lens/sampled_vocab.py: the final distribution's top tokens, computed once for the training pool,
plus uniform draws); plus one model forward over the training tokens to fill the pool. `points`
limits P on deep models; untrained translators stay the identity (= the logit lens).
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
from mechscope.lens.logit_lens import LogitLensConfig, LogitLensResult, run_lenses
from mechscope.lens.sampled_vocab import VocabHead, sample_vocab, top_tokens
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
    points: tuple[int, ...] | None = None  # residual points to train (0 = embed); None: all but the last
    vocab_sample: int | None = None  # train on a sampled vocabulary of this size; None: the full vocabulary
    vocab_top_k: int = 16          # with vocab_sample: the final distribution's top tokens per row always in it


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


def lens_kl(model, lens: TunedLens, resid: torch.Tensor, points: list[int] | None = None,
            vocab: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over points and rows of KL(final || lens); resid [n_points n d_model], final = last point.

    points: the residual point of each of resid's first n_points - 1 entries (default 0, 1, ...).
    vocab: token ids [v] to compute both distributions on, each renormalised over them
    (sampled_vocab.py); None: the full vocabulary.
    """
    points = list(range(resid.shape[0] - 1)) if points is None else points
    head = VocabHead(model, vocab)
    with torch.no_grad():
        final = torch.log_softmax(head(model.ln_final(resid[-1])).float(), dim=-1)
    if not points:
        return resid.new_zeros((), dtype=torch.float32)
    # every point's translated residual through one norm and one (restricted) unembedding: [P n d] -> [P n v]
    # (the last point's translator gets no signal: KL is 0 there)
    x = model.ln_final(torch.stack([lens.translate(point, resid[index]) for index, point in enumerate(points)]))
    lp = torch.log_softmax(head(x).float(), -1)
    return (final.exp() * (final - lp)).sum(-1).mean()


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
    all_names = accumulated_resid_names(model.cfg.n_layers)
    points = _trained_points(cfg.points, len(all_names))
    names = [all_names[p] for p in points] + [all_names[-1]]

    def residuals(batch: torch.Tensor) -> torch.Tensor:          # [points+1 batch*pos d]
        with torch.no_grad():
            _, cache = model.run_with_cache(batch, names=names)
        return torch.stack([cache[name] for name in names]).flatten(1, 2)

    n_tokens = sum(b.numel() for b in batches)
    pool = None
    if n_tokens * len(names) * model.cfg.d_model * 4 <= cfg.cache_mb * 2**20:
        pool = torch.cat([residuals(b) for b in progress(batches, desc="tuned lens: caching residuals")], dim=1)
    sampled = cfg.vocab_sample is not None and cfg.vocab_sample < model.cfg.d_vocab
    pool_top = top_tokens(model, pool[-1], cfg.vocab_top_k) if sampled and pool is not None else None
    losses: list[float] = []
    with frozen(model.hf_model):
        for step in progress(range(start, cfg.steps), desc="tuned lens", total=cfg.steps, initial=start):
            resid = pool if pool is not None else residuals(batches[step % len(batches)])
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
            rows = torch.randperm(resid.shape[1], generator=gen)[:cfg.tokens_per_step].to(resid.device)
            vocab = None
            if sampled:
                top = pool_top[rows] if pool_top is not None else top_tokens(model, resid[-1, rows], cfg.vocab_top_k)
                vocab = sample_vocab(top, cfg.vocab_sample, model.cfg.d_vocab, gen)
            loss = lens_kl(model, lens, resid[:, rows], points, vocab)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            done = step + 1
            if checkpoint_dir is not None and (done % cfg.checkpoint_every == 0 or done == cfg.steps):
                save_checkpoint(checkpoint_dir, lens, optimizer, done)
    return lens, TunedLensTraining(steps=cfg.steps, resumed_from=start, losses=losses)


def _trained_points(points: tuple[int, ...] | None, n_points: int) -> list[int]:
    """The points whose translators train: every one but the last by default (its KL is 0)."""
    if points is None:
        return list(range(n_points - 1))
    chosen = sorted({int(p) for p in points if int(p) != n_points - 1})
    if not chosen or chosen[0] < 0 or chosen[-1] >= n_points:
        raise InputError(f"tuned-lens points must lie in 0..{n_points - 2} (the last point needs no translator), "
                         f"got {list(points)}")
    return chosen


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


def compare_lenses(model, lens: TunedLens, tokens, cfg: LogitLensConfig | None = None,
                   points: list[int] | None = None) -> tuple[LensComparison, LogitLensResult, LogitLensResult]:
    """Evaluate the logit lens and `lens` on the same held-out tokens (one forward per batch), with the
    exact full-vocabulary KL, at `points` (indices into the residual points; None: all)."""
    with torch.no_grad():
        read = run_lenses(model, tokens, {"logit lens": None, "tuned lens": lens.translate}, cfg, points)
    logit, tuned = read["logit lens"], read["tuned lens"]
    return LensComparison(layer_labels=logit.layer_labels, logit_kl=logit.kl_to_final, tuned_kl=tuned.kl_to_final,
                          logit_ce=logit.ce, tuned_ce=tuned.ce, final_ce=logit.final_ce), logit, tuned
