"""The AuxK loss (Gao et al. 2024, "Scaling and evaluating sparse autoencoders").

Dead latents get no gradient from a TopK reconstruction. AuxK asks the top `auxk_k` *dead*
latents to reconstruct what the live ones missed, e = x_n - x_hat_n, and adds
auxk_coefficient * mean_tokens ||e - e_hat||^2 to the loss, which pulls dead latents back towards
the data.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mechscope.dictionary.sparse_ops import sparse_decode


def dead_indices(dead_mask: Tensor | None) -> Tensor | None:
    """[d_sae] bool -> indices of dead latents, or None when there are none."""
    if dead_mask is None or not bool(dead_mask.any()):
        return None
    return dead_mask.nonzero().squeeze(-1)


def auxk_loss(sae, pre_dead: Tensor, dead: Tensor, residual_n: Tensor) -> Tensor:
    """pre_dead [n n_dead]: pre-activations of the dead latents `dead` [n_dead];
    residual_n [n d_in]: the (detached) reconstruction error in normalised space -> 0-d loss."""
    k_aux = min(sae.cfg.auxk_k, dead.numel())
    values, local = pre_dead.topk(k_aux, dim=-1, sorted=False)
    e_hat = sparse_decode(dead[local], torch.relu(values), sae.W_dec)
    return sae.cfg.auxk_coefficient * (e_hat - residual_n).pow(2).sum(-1).mean()
