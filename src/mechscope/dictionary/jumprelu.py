"""JumpReLU SAE (Rajamanoharan et al. 2024, "Jumping ahead"; Gemma Scope).

    f_i = pre_i * H(pre_i - theta_i)      theta_i = exp(log_threshold_i) > 0 learned per latent
    sparsity = l0_coefficient * mean_tokens sum_i H(pre_i - theta_i)          (an L0 penalty)

H (the step function) has zero gradient almost everywhere, so theta is trained with a
straight-through estimator: in the backward pass dH(z - theta)/dtheta is replaced by the kernel
pseudo-derivative -(1/eps) K((z - theta)/eps), K the rectangle on [-1/2, 1/2] and eps the
bandwidth. Gradients to the pre-activations themselves are exact.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from mechscope.dictionary.base import SparseAutoencoder
from mechscope.dictionary.config import SAEConfig


def _rectangle(u: Tensor) -> Tensor:
    return ((u > -0.5) & (u < 0.5)).to(u.dtype)


class _JumpReLU(torch.autograd.Function):
    """pre [n d_sae], threshold [d_sae] -> pre * H(pre - threshold)."""

    @staticmethod
    def forward(ctx, pre: Tensor, threshold: Tensor, bandwidth: float):
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return pre * (pre > threshold)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        pre, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        grad_pre = grad_out * (pre > threshold)
        # d/dtheta [z H(z - theta)] ~ -(theta / eps) K((z - theta) / eps)
        grad_theta = (-(threshold / eps) * _rectangle((pre - threshold) / eps) * grad_out).sum(0)
        return grad_pre, grad_theta, None


class _Step(torch.autograd.Function):
    """pre [n d_sae], threshold [d_sae] -> H(pre - threshold), with the kernel pseudo-gradient for theta."""

    @staticmethod
    def forward(ctx, pre: Tensor, threshold: Tensor, bandwidth: float):
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return (pre > threshold).to(pre.dtype)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        pre, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        grad_theta = (-(1.0 / eps) * _rectangle((pre - threshold) / eps) * grad_out).sum(0)
        return torch.zeros_like(pre), grad_theta, None


class JumpReLUSAE(SparseAutoencoder):
    architecture = "jumprelu"

    def __init__(self, cfg: SAEConfig):
        super().__init__(cfg)
        self.log_threshold = nn.Parameter(torch.full((cfg.d_sae,), math.log(cfg.jumprelu_init_threshold)))

    @property
    def threshold(self) -> Tensor:
        """[d_sae] per-latent activation threshold."""
        return self.log_threshold.exp()

    def activation(self, pre: Tensor) -> Tensor:
        return _JumpReLU.apply(pre, self.threshold, self.cfg.jumprelu_bandwidth)

    def sparsity_loss(self, latents: Tensor, pre: Tensor) -> Tensor:
        l0 = _Step.apply(pre, self.threshold, self.cfg.jumprelu_bandwidth).sum(-1).mean()
        return self.cfg.l0_coefficient * l0
