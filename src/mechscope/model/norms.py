"""The model's norms: which modules they are, and the divisor each applies (one definition).

A LayerNorm computes w * (x - mean(x)) / s(x) + b with s(x) = sqrt(var(x) + eps); an RMSNorm
w * x / s(x) with s(x) = sqrt(mean(x^2) + eps). `norm_scale` is s(x): the ``hook_scale`` hook
points, the frozen norms of the lens and the linearised norm of cache decompositions all read it.
"""

from __future__ import annotations

import torch

from mechscope.model.structure import Structure


def norm_scale(x: torch.Tensor, kind: str, eps: float) -> torch.Tensor:
    """The divisor a LayerNorm / RMSNorm applies: [..., d_model] -> [..., 1] in fp32 (one reduction pass)."""
    x = x.float()
    if kind == "layernorm":
        x = x - x.mean(-1, keepdim=True)
    # vector_norm is one fast reduction (torch.var_mean is ~5x slower on CPU than the pow/mean pair)
    norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    if torch.is_grad_enabled() and norm.requires_grad:      # same ops, out of place, for autograd
        return (norm.square() / x.shape[-1] + eps).sqrt()
    return norm.square_().div_(x.shape[-1]).add_(eps).sqrt_()


def norm_eps(module: torch.nn.Module, eps_attr: str) -> float:
    """The eps of a norm module (its attribute is named by the architecture table)."""
    return float(getattr(module, eps_attr, 1e-5))


def norm_modules(structure: Structure) -> dict[str, torch.nn.Module]:
    """Every norm by site name, in forward order: blocks.L.ln1, blocks.L.ln2 per block, then ln_final."""
    sites = {}
    for layer, block in enumerate(structure.blocks):
        sites[f"blocks.{layer}.ln1"] = block.ln1
        sites[f"blocks.{layer}.ln2"] = block.ln2
    sites["ln_final"] = structure.final_norm
    return sites
