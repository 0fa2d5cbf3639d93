"""What every sparse autoencoder shares: parameters, encode/decode, the loss, data-based init.

An SAE reads activations x [..., d_in] and writes latents f [..., d_sae] and a reconstruction

    x_n   = x * input_scale                               (one constant fitted on data)
    f     = activation((x_n - b_dec) @ W_enc + b_enc)     (the variant's sparsity mechanism)
    x_hat = (f @ W_dec + b_dec) / input_scale

with W_enc [d_in d_sae], W_dec [d_sae d_in] (row i = latent i's direction), b_enc [d_sae],
b_dec [d_in]. A variant (relu_l1.py, topk.py, batch_topk.py, jumprelu.py) supplies
`activation` and `sparsity_loss`, and may override `forward` with a faster sparse path.
Losses live in the normalised space so coefficients transfer between models.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from mechscope.dictionary.config import SAEConfig
from mechscope.dictionary.geometric_median import geometric_median


class SAEOutput(NamedTuple):
    """Everything one forward pass computes (scalars are 0-d tensors).

    reconstruction [..., d_in]: x_hat, in the units of the input.
    latents [..., d_sae] | None: dense latent activations (None on the sparse TopK path).
    fire_counts [d_sae]: how many of this batch's tokens each latent fired on.
    l0: mean number of active latents per token.
    loss: what the trainer minimises = reconstruction_loss + sparsity_loss + auxk_loss.
    reconstruction_loss: mean over tokens of ||x_n - x_hat_n||^2 (normalised space).
    fvu: fraction of variance unexplained, sum ||x - x_hat||^2 / sum ||x - mean(x)||^2.
    """

    reconstruction: Tensor
    latents: Tensor | None
    fire_counts: Tensor
    l0: Tensor
    loss: Tensor
    reconstruction_loss: Tensor
    sparsity_loss: Tensor
    auxk_loss: Tensor
    fvu: Tensor


def fraction_of_variance_unexplained(x: Tensor, x_hat: Tensor) -> Tensor:
    """sum ||x - x_hat||^2 / sum ||x - mean(x)||^2 over the tokens of x [n d]."""
    total = (x - x.mean(0)).pow(2).sum()
    return (x - x_hat).pow(2).sum() / total.clamp_min(torch.finfo(x.dtype).tiny)


class SparseAutoencoder(nn.Module):
    """Base class; construct a variant with `mechscope.dictionary.create_sae(cfg)`."""

    architecture: str = ""

    def __init__(self, cfg: SAEConfig):
        super().__init__()
        self.cfg = cfg
        d_in, d_sae = cfg.d_in, cfg.d_sae
        gen = torch.Generator().manual_seed(cfg.seed)
        directions = torch.randn(d_sae, d_in, generator=gen)
        directions /= directions.norm(dim=-1, keepdim=True)
        self.W_dec = nn.Parameter(directions.clone())
        # Tied init (encoder = decoder transpose). W_enc is [d_in d_sae] but stored latent-major
        # (a transposed view of a contiguous [d_sae d_in] tensor) so one latent's encoder weights
        # are contiguous: the sparse TopK kernels gather and scatter whole rows.
        self.W_enc = nn.Parameter(directions.clone().T)
        self.b_enc = nn.Parameter(torch.zeros(d_sae))
        self.b_dec = nn.Parameter(torch.zeros(d_in))
        self.register_buffer("input_scale", torch.ones(()))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    # ---------------------------------------------------------------- variant interface
    def activation(self, pre: Tensor) -> Tensor:
        """Pre-activations [n d_sae] -> latent activations [n d_sae]."""
        raise NotImplementedError

    def sparsity_loss(self, latents: Tensor, pre: Tensor) -> Tensor:
        """The variant's sparsity penalty (0-d), from latents and pre-activations [n d_sae]."""
        return latents.new_zeros(())

    # ---------------------------------------------------------------- encode / decode
    @property
    def d_in(self) -> int:
        return self.cfg.d_in

    @property
    def d_sae(self) -> int:
        return self.cfg.d_sae

    def pre_activations(self, x_n: Tensor) -> Tensor:
        """Normalised inputs [n d_in] -> encoder pre-activations [n d_sae]."""
        return torch.addmm(self.b_enc, x_n - self.b_dec, self.W_enc)

    def encode(self, x: Tensor) -> Tensor:
        """Activations [..., d_in] -> dense latent activations [..., d_sae]."""
        lead = x.shape[:-1]
        x_n = x.reshape(-1, self.d_in).to(self.W_enc.dtype) * self.input_scale
        return self.activation(self.pre_activations(x_n)).reshape(*lead, self.d_sae)

    def decode(self, latents: Tensor) -> Tensor:
        """Latent activations [..., d_sae] -> reconstruction [..., d_in] in input units."""
        lead = latents.shape[:-1]
        out = torch.addmm(self.b_dec, latents.reshape(-1, self.d_sae), self.W_dec) / self.output_divisor()
        return out.reshape(*lead, self.d_in)

    def forward(self, x: Tensor, dead_mask: Tensor | None = None) -> SAEOutput:
        """x [..., d_in] -> SAEOutput; `dead_mask` [d_sae] enables the AuxK loss where supported."""
        lead = x.shape[:-1]
        x = x.reshape(-1, self.d_in).to(self.W_enc.dtype)
        x_n = x * self.input_scale
        pre = self.pre_activations(x_n)
        latents = self.activation(pre)
        recon_n = torch.addmm(self.b_dec, latents, self.W_dec)
        sparsity = self.sparsity_loss(latents, pre)
        auxk = self.auxk_loss(x_n - recon_n.detach(), pre, dead_mask)
        active = latents > 0
        return self._output(x, x_n, recon_n, latents.reshape(*lead, self.d_sae), active.sum(0),
                            active.sum(-1).float().mean(), sparsity, auxk, lead)

    def output_divisor(self) -> Tensor:
        """What turns a normalised reconstruction back into output units (a transcoder has its own)."""
        return self.input_scale

    def auxk_loss(self, residual_n: Tensor, pre: Tensor, dead_mask: Tensor | None) -> Tensor:
        """No auxiliary loss unless a variant defines one."""
        return residual_n.new_zeros(())

    def _output(self, x, x_n, recon_n, latents, fire_counts, l0, sparsity, auxk, lead) -> SAEOutput:
        recon_loss = (recon_n - x_n).pow(2).sum(-1).mean()
        recon = recon_n / self.output_divisor()
        fvu = fraction_of_variance_unexplained(x.detach(), recon.detach())
        return SAEOutput(
            reconstruction=recon.reshape(*lead, self.d_in),
            latents=latents,
            fire_counts=fire_counts,
            l0=l0.detach(),
            loss=recon_loss + sparsity + auxk,
            reconstruction_loss=recon_loss.detach(),
            sparsity_loss=sparsity.detach(),
            auxk_loss=auxk.detach(),
            fvu=fvu,
        )

    # ---------------------------------------------------------------- training helpers
    @torch.no_grad()
    def initialize_from_data(self, x: Tensor) -> None:
        """Fit input_scale and b_dec on a sample of activations x [n d_in] (done once)."""
        x = x.reshape(-1, self.d_in).to(self.W_enc.dtype)
        if self.cfg.normalize_activations:
            mean_sq = x.pow(2).sum(-1).mean().clamp_min(1e-12)
            self.input_scale.fill_((self.d_in / mean_sq).sqrt())
        x_n = x * self.input_scale
        if self.cfg.b_dec_init == "geometric_median":
            self.b_dec.copy_(geometric_median(x_n))
        elif self.cfg.b_dec_init == "mean":
            self.b_dec.copy_(x_n.mean(0))
        else:
            self.b_dec.zero_()
        self.initialized.fill_(True)

    @torch.no_grad()
    def normalize_decoder_rows(self) -> None:
        """Set each latent's decoder direction to unit norm (when cfg.normalize_decoder)."""
        if self.cfg.normalize_decoder:
            self.W_dec /= self.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-8)

    @torch.no_grad()
    def remove_gradient_parallel_to_decoder_rows(self) -> None:
        """Project out the part of W_dec.grad that would only change row norms (undone anyway)."""
        if self.cfg.normalize_decoder and self.W_dec.grad is not None:
            parallel = (self.W_dec.grad * self.W_dec).sum(-1, keepdim=True)
            self.W_dec.grad -= parallel * self.W_dec

    @property
    def decoder_norms(self) -> Tensor:
        """[d_sae] norm of each latent's decoder row."""
        return self.W_dec.norm(dim=-1)
