"""BatchTopK SAE (Bussmann et al. 2024): the k * n largest activations over a whole batch of n tokens.

Training keeps the top k*n of ReLU(pre) across the batch, so L0 averages k but varies by token.
Inference cannot depend on the batch, so a single threshold (a running average of the smallest
activation kept in training batches) replaces the selection: f = pre * (pre > threshold), which
is a JumpReLU with one threshold for all latents (SAELens exports it that way).

Under data-parallel training each process selects within its own share of the batch.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mechscope.dictionary.auxk import auxk_loss, dead_indices
from mechscope.dictionary.base import SparseAutoencoder
from mechscope.dictionary.config import SAEConfig


class BatchTopKSAE(SparseAutoencoder):
    architecture = "batch_topk"
    threshold_momentum = 0.99

    def __init__(self, cfg: SAEConfig):
        super().__init__(cfg)
        self.register_buffer("threshold", torch.zeros(()))
        self.register_buffer("threshold_set", torch.zeros((), dtype=torch.bool))

    def activation(self, pre: Tensor) -> Tensor:
        acts = torch.relu(pre)
        if not self.training:
            return acts * (acts > self.threshold)
        n_keep = min(self.cfg.k * acts.shape[0], acts.numel())
        values, flat_idx = acts.reshape(-1).topk(n_keep, sorted=False)
        kept = torch.zeros_like(acts).reshape(-1).scatter_(0, flat_idx, values).reshape(acts.shape)
        positive = values[values > 0]
        if positive.numel():
            self._update_threshold(positive.min().detach())
        return kept

    @torch.no_grad()
    def _update_threshold(self, smallest_kept: Tensor) -> None:
        if not bool(self.threshold_set):
            self.threshold.copy_(smallest_kept)
            self.threshold_set.fill_(True)
        else:
            self.threshold.lerp_(smallest_kept, 1 - self.threshold_momentum)

    def auxk_loss(self, residual_n: Tensor, pre: Tensor, dead_mask: Tensor | None) -> Tensor:
        dead = dead_indices(dead_mask)
        if dead is None:
            return residual_n.new_zeros(())
        return auxk_loss(self, pre[:, dead], dead, residual_n)
