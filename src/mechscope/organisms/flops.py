"""FLOP accounting: the model's training FLOPs per token and the machine's fp32 matmul peak."""

from __future__ import annotations

import time

import torch


def training_flops_per_token(n_layer: int, d_model: int, d_mlp: int, vocab_size: int, seq_len: int) -> float:
    """Forward+backward matmul FLOPs per token: 6 x (matmul weights) + attention scores/mixing.

    Weights per layer: QKV (3 d^2) + output (d^2) + MLP (2 d d_mlp); plus the unembedding (d V).
    Attention: QK^T and pattern @ V cost 2 x 2 x seq_len x d per token per layer forward (the full
    square, as the kernels compute it), x3 for forward + backward.
    """
    weights = n_layer * (4 * d_model * d_model + 2 * d_model * d_mlp) + d_model * vocab_size
    attention = n_layer * 4 * seq_len * d_model
    return 6.0 * weights + 3.0 * attention


def matmul_peak_flops(size: int = 1024, seconds: float = 1.0) -> float:
    """fp32 FLOP/s of a square matmul on this machine with torch's current thread count (best of runs)."""
    a = torch.randn(size, size)
    b = torch.randn(size, size)
    a @ b
    best, start = 0.0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        t = time.perf_counter()
        a @ b
        best = max(best, 2 * size**3 / (time.perf_counter() - t))
    return best
