"""ReLU SAE with a decoder-norm-aware L1 penalty (Bricken et al. 2023; Anthropic, April 2024 update).

    f = ReLU(pre),   sparsity = l1_coefficient * mean_tokens sum_i f_i * ||W_dec[i]||

Weighting each latent's activation by its decoder norm stops the optimiser from shrinking f and
growing the decoder row to dodge the penalty, so the penalty stays meaningful whether or not
decoder rows are held at unit norm.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mechscope.dictionary.base import SparseAutoencoder


class ReluL1SAE(SparseAutoencoder):
    architecture = "relu_l1"

    def activation(self, pre: Tensor) -> Tensor:
        return torch.relu(pre)

    def sparsity_loss(self, latents: Tensor, pre: Tensor) -> Tensor:
        return self.cfg.l1_coefficient * (latents * self.decoder_norms).sum(-1).mean()
