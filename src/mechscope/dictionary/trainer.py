"""Train one or several SAEs from one stream of activation batches.

    trainer = SAETrainer({"l2_topk": sae_a, "l2_relu": sae_b}, TrainerConfig(steps=2000))
    history = trainer.fit(batches)      # batches: Tensor [n d_in] or {hook_name: Tensor [n d]}

Each SAE reads `batch[sae.cfg.hook_name]` when batches are dicts, so SAEs on different hooks (or
with different hyperparameters on the same hook) share one pass over the model or the disk store.

Schedule: Adam; linear warmup over `warmup_steps`, constant, then linear decay to zero over the
last `decay_fraction` of steps. Decoder rows are re-normalised after every step.

Data-parallel: run the same script under `torchrun --nproc-per-node N`; every process feeds its
own share of each global batch (rows [rank*n/N, (rank+1)*n/N)) and gradients are averaged, so N
processes follow the same trajectory as one process on the whole batch. See docs/sae-training.md.

Latent-sharded dictionaries (`latent_sharded = True`, sharded_topk.py) split their latents, not the
batch, across processes: every process feeds the same batches, and the trainer neither averages their
gradients nor broadcasts their initialisation nor sums their per-latent fire counts.

Checkpoints (`checkpoint_dir`): one file written atomically by rank 0; `fit` resumes from it and
skips the batches already consumed.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import Tensor

from mechscope import distributed as ddp
from mechscope.dictionary.base import SparseAutoencoder
from mechscope.dictionary.latent_stats import LatentStats
from mechscope.dictionary.training_history import TrainingHistory
from mechscope.errors import CheckpointError, InputError
from mechscope.io import atomic_path
from mechscope.progress import progress

CHECKPOINT_NAME = "trainer_state.pt"


@dataclasses.dataclass
class TrainerConfig:
    """steps: optimiser steps; lr: None -> 2e-4 / sqrt(d_sae / 16384) per SAE (Gao et al. scaling)."""

    steps: int = 1000
    lr: float | None = None
    warmup_steps: int = 50
    decay_fraction: float = 0.2
    adam_betas: tuple[float, float] = (0.9, 0.999)
    max_grad_norm: float | None = None
    log_every: int = 10
    checkpoint_dir: str | None = None
    checkpoint_every: int = 0        # 0: only at the end
    dense_above: float = 0.1         # firing frequency above which a latent counts as dense
    show_progress: bool | None = None


def _adam(sae: SparseAutoencoder, lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    """Adam, fused (one pass over each parameter) where this PyTorch supports it."""
    try:
        return torch.optim.Adam(sae.parameters(), lr=lr, betas=betas, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(sae.parameters(), lr=lr, betas=betas)


def default_lr(d_sae: int) -> float:
    return 2e-4 / math.sqrt(d_sae / 16384)


class SAETrainer:
    def __init__(self, saes: SparseAutoencoder | Mapping[str, SparseAutoencoder], cfg: TrainerConfig | None = None):
        if isinstance(saes, SparseAutoencoder):
            saes = {saes.cfg.hook_name or "sae": saes}
        if not saes:
            raise InputError("SAETrainer needs at least one SAE")
        self.saes = dict(saes)
        self.cfg = cfg or TrainerConfig()
        ddp.init_from_env()
        self.step = 0
        self.stats = {name: LatentStats(sae.d_sae) for name, sae in self.saes.items()}
        self.base_lr = {n: self.cfg.lr if self.cfg.lr is not None else default_lr(s.d_sae) for n, s in self.saes.items()}
        self.optimizers = {n: _adam(s, self.base_lr[n], self.cfg.adam_betas) for n, s in self.saes.items()}
        self.history = TrainingHistory(names=list(self.saes))

    def _lr_factor(self, step: int) -> float:
        cfg = self.cfg
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        decay_start = int(cfg.steps * (1 - cfg.decay_fraction))
        if cfg.decay_fraction > 0 and step >= decay_start:
            return max(0.0, (cfg.steps - step) / max(cfg.steps - decay_start, 1))
        return 1.0

    # ---------------------------------------------------------------- the loop
    def fit(self, batches: Iterable[Tensor | Mapping[str, Tensor]]) -> TrainingHistory:
        """Train until cfg.steps, resuming from the checkpoint in cfg.checkpoint_dir if there is one."""
        if self.cfg.checkpoint_dir and (Path(self.cfg.checkpoint_dir) / CHECKPOINT_NAME).exists() and self.step == 0:
            self.load_checkpoint(Path(self.cfg.checkpoint_dir) / CHECKPOINT_NAME)
        it = itertools.islice(iter(batches), self.step, None)  # skip what a resumed run already consumed
        show = self.cfg.show_progress if ddp.rank() == 0 else False
        with progress(total=self.cfg.steps, initial=self.step, desc="training SAEs", enabled=show) as bar:
            while self.step < self.cfg.steps:
                try:
                    batch = next(it)
                except StopIteration:
                    break
                metrics = self.train_step(batch)
                bar.update(1)
                if self.step % self.cfg.log_every == 0 or self.step == self.cfg.steps:
                    self.history.record(self.step, metrics)
                    first = metrics[next(iter(self.saes))]
                    bar.set_postfix(loss=f"{first['loss']:.4g}", L0=f"{first['l0']:.1f}",
                                    FVU=f"{first['fvu']:.3f}", dead=f"{first['dead_fraction']:.2f}")
                if self.cfg.checkpoint_dir and self.cfg.checkpoint_every and self.step % self.cfg.checkpoint_every == 0:
                    self.save_checkpoint()
        if self.cfg.checkpoint_dir:
            self.save_checkpoint()
        return self.history

    def train_step(self, batch: Tensor | Mapping[str, Tensor]) -> dict[str, dict[str, float]]:
        """One optimiser step for every SAE on this process's share of a batch."""
        out_metrics = {}
        for name, sae in self.saes.items():
            select = getattr(sae, "select_training_input", None)  # transcoders / crosscoders pack several hooks
            x = select(batch) if select else self._select(batch, sae).reshape(-1, sae.d_in)
            sharded = getattr(sae, "latent_sharded", False)     # every rank has the whole batch
            if not bool(sae.initialized):
                sae.initialize_from_data(x if sharded else ddp.all_gather_cat(x))
                if not sharded:
                    ddp.broadcast_module_(sae)
            stats = self.stats[name]
            sae.train()
            out = sae(x, dead_mask=stats.dead_mask(sae.cfg.dead_after_tokens))
            out.loss.backward()
            if not sharded:   # a shard's gradient is already the whole loss's gradient for its latents
                ddp.all_reduce_mean_([p.grad for p in sae.parameters() if p.grad is not None])
            sae.remove_gradient_parallel_to_decoder_rows()
            if self.cfg.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(sae.parameters(), self.cfg.max_grad_norm)
            lr = self.base_lr[name] * self._lr_factor(self.step)
            for group in self.optimizers[name].param_groups:
                group["lr"] = lr
            self.optimizers[name].step()
            self.optimizers[name].zero_grad(set_to_none=True)
            sae.normalize_decoder_rows()
            if sharded:
                stats.update(out.fire_counts, x.shape[0])
            else:
                stats.update(ddp.all_reduce_sum(out.fire_counts), x.shape[0] * ddp.world_size())
            logged = torch.stack([out.loss.detach(), out.l0, out.fvu, out.reconstruction_loss, out.auxk_loss])
            ddp.all_reduce_mean_([logged])
            loss, l0, fvu, recon, auxk = logged.tolist()
            out_metrics[name] = {
                "loss": loss, "l0": l0, "fvu": fvu, "reconstruction_loss": recon, "auxk_loss": auxk,
                "dead_fraction": float(stats.dead_mask(sae.cfg.dead_after_tokens).float().mean()),
                "lr": lr,
            }
        self.step += 1
        return out_metrics

    @staticmethod
    def _select(batch: Tensor | Mapping[str, Tensor], sae: SparseAutoencoder) -> Tensor:
        if isinstance(batch, Mapping):
            if sae.cfg.hook_name not in batch:
                raise InputError(f"batch has hooks {sorted(batch)} but an SAE reads {sae.cfg.hook_name!r}; "
                                 "set SAEConfig.hook_name to one of them")
            return batch[sae.cfg.hook_name]
        return batch

    # ---------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "saes": {n: s.state_dict() for n, s in self.saes.items()},
            "optimizers": {n: o.state_dict() for n, o in self.optimizers.items()},
            "stats": {n: s.state_dict() for n, s in self.stats.items()},
            "history": self.history.to_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        if set(state["saes"]) != set(self.saes):
            raise CheckpointError(f"checkpoint holds SAEs {sorted(state['saes'])}, trainer has {sorted(self.saes)}; "
                                  "use the same names or a fresh checkpoint_dir")
        self.step = int(state["step"])
        for n in self.saes:
            self.saes[n].load_state_dict(state["saes"][n])
            self.optimizers[n].load_state_dict(state["optimizers"][n])
            self.stats[n].load_state_dict(state["stats"][n])
        self.history = TrainingHistory.from_dict(state["history"])

    def save_checkpoint(self, path: str | Path | None = None) -> Path:
        path = Path(path) if path else Path(self.cfg.checkpoint_dir) / CHECKPOINT_NAME
        if ddp.rank() == 0:
            with atomic_path(path) as tmp:
                torch.save(self.state_dict(), tmp)
        ddp.barrier()
        return path

    def load_checkpoint(self, path: str | Path) -> None:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # truncated or foreign file
            raise CheckpointError(f"cannot read checkpoint {path}: {err}; delete it to start over") from err
        self.load_state_dict(state)
