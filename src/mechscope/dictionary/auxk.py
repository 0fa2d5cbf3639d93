"""The AuxK loss (Gao et al. 2024, "Scaling and evaluating sparse autoencoders").

Dead latents get no gradient from a TopK reconstruction. AuxK asks the top `auxk_k` *dead*
latents to reconstruct what the live ones missed, e = x_n - x_hat_n, and adds
auxk_coefficient * mean_tokens ||e - e_hat||^2 to the loss, which pulls dead latents back towards
the data.

Two forms with the same value and gradient: `auxk_loss` reads dead pre-activations that carry their
own gradient (BatchTopK, cross-layer transcoders); `sparse_auxk_loss` is for the TopK SAE and
transcoder, whose encoder forward already computed every pre-activation: it chooses the dead latents
from those (detached) and gives the chosen k_aux per token a sparse backward, instead of a second
[n n_dead] product, its [d_in n_dead] gradient and the column gathers. A transcoder at the 135M shape's
MLP (d 576, 2048 latents, ~60% dead after 20 steps on a random model), 200 steps, A/B in one process:
110 -> 90 ms per step, weights equal to 1e-7. Both forms tell the backward which latents are dead, so it
runs as dense products over the dead rows and columns while they are at most a few times k_aux
(sparse_ops._support_positions): the same transcoder on a random 4-block 135M-shape model (layers 1 and 2,
200 steps, one busy thread, A/B twice in one process): 114 / 119 -> 101 / 92 ms per step, weights equal to 1e-7.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mechscope.dictionary.sparse_ops import encode_at, sparse_decode


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
    e_hat = sparse_decode(dead[local], torch.relu(values), sae.W_dec, support=dead)
    return sae.cfg.auxk_coefficient * (e_hat - residual_n).pow(2).sum(-1).mean()


def sparse_auxk_loss(sae, x_in: Tensor, pre: Tensor, dead_mask: Tensor, residual_n: Tensor) -> Tensor:
    """`auxk_loss` for an encoder x_in [n d_in] @ sae.W_enc + sae.b_enc whose pre-activations `pre`
    [n d_sae] (detached) were already computed; dead_mask [d_sae] bool, at least one dead latent."""
    dead = dead_indices(dead_mask)
    k_aux = min(sae.cfg.auxk_k, dead.numel())
    with torch.no_grad():
        chosen = pre.masked_fill(~dead_mask, float("-inf")).topk(k_aux, dim=-1, sorted=False).indices
    values = encode_at(x_in, sae.W_enc, sae.b_enc, chosen, known=pre, support=dead)
    e_hat = sparse_decode(chosen, torch.relu(values), sae.W_dec, support=dead)
    return sae.cfg.auxk_coefficient * (e_hat - residual_n).pow(2).sum(-1).mean()
