"""TopK SAE (Makhzani & Frey 2013; Gao et al. 2024): exactly k active latents per token.

    f = ReLU(TopK_k(pre))        (all but the k largest pre-activations set to zero)

No sparsity penalty: k sets L0 directly. The training forward runs on the sparse kernels of
sparse_ops.py (only the k active latents are decoded and receive gradient), and dead latents are
revived by the AuxK loss.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mechscope.dictionary.auxk import sparse_auxk_loss
from mechscope.dictionary.base import SAEOutput, SparseAutoencoder
from mechscope.dictionary.sparse_ops import sparse_decode, topk_encode


class TopKSAE(SparseAutoencoder):
    architecture = "topk"

    def activation(self, pre: Tensor) -> Tensor:
        values, indices = pre.topk(self.cfg.k, dim=-1, sorted=False)
        return torch.zeros_like(pre).scatter_(-1, indices, torch.relu(values))

    def forward(self, x: Tensor, dead_mask: Tensor | None = None) -> SAEOutput:
        """x [..., d_in] -> SAEOutput. `latents` is dense in eval mode and None in training mode."""
        lead = x.shape[:-1]
        x = x.reshape(-1, self.d_in).to(self.W_enc.dtype)
        x_n = x * self.input_scale
        x_in = x_n - self.b_dec
        values, indices, pre = topk_encode(x_in, self.W_enc, self.b_enc, self.cfg.k, keep_pre=True)
        acts = torch.relu(values)
        recon_n = sparse_decode(indices, acts, self.W_dec) + self.b_dec
        active = acts > 0
        fire_counts = torch.bincount(indices[active], minlength=self.d_sae)
        latents = None
        if not self.training:
            dense = torch.zeros(x.shape[0], self.d_sae, dtype=acts.dtype, device=acts.device)
            latents = dense.scatter_(-1, indices, acts).reshape(*lead, self.d_sae)
        auxk = acts.new_zeros(())
        if dead_mask is not None and bool(dead_mask.any()):
            auxk = sparse_auxk_loss(self, x_in, pre, dead_mask, (x_n - recon_n).detach())
        return self._output(x, x_n, recon_n, latents, fire_counts, active.sum(-1).float().mean(),
                            acts.new_zeros(()), auxk, lead)
