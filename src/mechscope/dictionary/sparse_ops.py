"""Sparse kernels for TopK SAEs: only the k active latents of each token are touched.

A dense TopK SAE multiplies by the full decoder and back-propagates through the full encoder
pre-activations: five [n d_in] x [d_in d_sae]-sized matmuls per step. Here the forward keeps one
dense matmul (the encoder, needed to choose the top k) and everything else is gather/scatter over
[n k] indices: the decoder is an `embedding_bag` (a weighted sum of k decoder rows), and the
encoder gradient is a sparse [d_sae n] x [n d_in] product. This is the trick of EleutherAI's
sparsify, written with stock PyTorch ops so it runs on CPU and GPU.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor


def sparse_decode(indices: Tensor, values: Tensor, W_dec: Tensor, support: Tensor | None = None) -> Tensor:
    """sum_j values[n, j] * W_dec[indices[n, j]]: indices, values [n k], W_dec [d_sae d_in] -> [n d_in].

    support: the sorted, distinct latents every index is drawn from (AuxK's dead latents), if known; when
    it is small enough (`_support_positions`) the backward is dense over those latents' rows.
    """
    if not (values.requires_grad or W_dec.requires_grad) or not torch.is_grad_enabled():
        return _bag(indices, values, W_dec)
    return SparseDecode.apply(indices, values, W_dec, support)


def _bag(indices: Tensor, values: Tensor, W: Tensor) -> Tensor:
    return F.embedding_bag(indices, W, per_sample_weights=values, mode="sum")


class SparseDecode(torch.autograd.Function):
    """embedding_bag forward; a backward that avoids embedding_bag's slow sort-based weight gradient:
    grad W_dec is a sparse [d_sae n] x [n d_in] product, grad values a batched gather-dot (or both dense
    over a small known support of latents: `_support_positions`)."""

    @staticmethod
    def forward(ctx, indices: Tensor, values: Tensor, W_dec: Tensor, support: Tensor | None):
        ctx.save_for_backward(indices, values, W_dec)
        ctx.support = support
        return _bag(indices, values, W_dec)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        indices, values, W_dec = ctx.saved_tensors
        grad_values = grad_W = None
        support = ctx.support
        local = _support_positions(indices, support, W_dec.shape[0])
        if local is not None:   # dense over the support's rows
            if ctx.needs_input_grad[1]:
                grad_values = (grad_out @ W_dec[support].T).gather(-1, local)
            if ctx.needs_input_grad[2]:
                grad_W = _support_rows(_scatter(local, values, support).T @ grad_out, support, W_dec.shape[0])
        else:
            if ctx.needs_input_grad[1]:
                grad_values = _gathered_dots(indices, W_dec, grad_out)
            if ctx.needs_input_grad[2]:
                grad_W = _sparse_rows_matmul(indices, values, grad_out, W_dec.shape[0])
        return None, grad_values, grad_W, None


DENSE_SUPPORT_RATIO = 4   # a backward over indices drawn from a known support goes dense when |support| <= this x k


def _support_positions(indices: Tensor, support: Tensor | None, n_rows: int) -> Tensor | None:
    """Where each of indices [n k] sits in `support` [s] (sorted, distinct, holding every index) -> [n k], or
    None when the sparse form is cheaper.

    The sparse products (`_sparse_rows_matmul`, `_gathered_dots`) run at about 1-2 GFLOP/s on one CPU thread,
    a dense product at 20-50, so dense products over the s support rows win while s is a few times k. AuxK
    at the 135M shape (k_aux 288, d 576, 256 tokens), its three backward products on one busy thread:
    sparse 57 / 47 / 54 ms, dense 19 / 30 / 59 ms at s = 300 / 1200 / 2000 dead latents.
    """
    if support is None or support.numel() > DENSE_SUPPORT_RATIO * indices.shape[-1]:
        return None
    lookup = torch.empty(n_rows, dtype=torch.long, device=indices.device)
    lookup[support] = torch.arange(support.numel(), device=indices.device)
    return lookup[indices]


def _scatter(local: Tensor, values: Tensor, support: Tensor) -> Tensor:
    """[n k] values at support positions `local` -> dense [n s]."""
    return values.new_zeros(values.shape[0], support.numel()).scatter_(-1, local, values)


def _support_rows(rows: Tensor, support: Tensor, n_rows: int) -> Tensor:
    """rows [s d] of the support latents -> [n_rows d], zero elsewhere."""
    return rows.new_zeros(n_rows, rows.shape[-1]).index_copy_(0, support, rows)


SAMPLED_DOTS_RATIO = 8   # on CPU float32/64, _gathered_dots samples the product when d_sae >= this x k
DENSE_DOTS_RATIO = 64    # otherwise it goes dense when d_sae <= this x k


def _gathered_dots(indices: Tensor, W: Tensor, dense: Tensor) -> Tensor:
    """out[n, j] = W[indices[n, j]] . dense[n]: indices [n k], W [d_sae d], dense [n d] -> [n k].

    On CPU in float32/64 a sampled dense-dense product (`torch.sparse.sampled_addmm` at the [n k] pattern)
    computes only the n*k dots without gathering rows, at about a fifth of a dense product's speed per
    multiply-add: at d 768, d_sae 2048, n 256 it is 7x faster than the dense product and its gather for
    k 48 (2.1 vs 15 ms; 76 ms for gathered rows) and 2x for k 128, but 1.4x slower for the AuxK loss's
    k = d/2 = 384. So it is used when d_sae >= SAMPLED_DOTS_RATIO x k. Elsewhere (no such kernel for
    bfloat16 on CPU; on GPU the dense product is cheap), gathering n*k rows of W costs about 100x a
    multiply-add per element, so when d_sae <= DENSE_DOTS_RATIO x k the dots come from the dense product
    (AuxK's k = 384: 1078 ms gathered vs 45 ms dense) and otherwise from the gathered rows.
    """
    if _can_sample(W, dense) and W.shape[0] >= SAMPLED_DOTS_RATIO * indices.shape[-1]:
        return _sampled_dots(indices, W, dense)
    if W.shape[0] <= DENSE_DOTS_RATIO * indices.shape[-1]:
        return (dense @ W.T).gather(-1, indices)
    return torch.bmm(W[indices], dense.unsqueeze(-1)).squeeze(-1)


def _can_sample(W: Tensor, dense: Tensor) -> bool:
    return W.device.type == "cpu" and W.dtype in (torch.float32, torch.float64) and dense.dtype == W.dtype


def _sampled_dots(indices: Tensor, W: Tensor, dense: Tensor) -> Tensor:
    """`_gathered_dots` as (dense @ W.T) sampled at the pattern indices (CSR, k distinct entries per row,
    as top-k gives them, in the order given: the values come back in that order)."""
    n, k = indices.shape
    crow = torch.arange(0, n * k + 1, k, device=indices.device)
    with warnings.catch_warnings():   # torch calls its CSR tensors beta, once per process
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", category=UserWarning)
        pattern = torch.sparse_csr_tensor(crow, indices.reshape(-1), dense.new_zeros(n * k), (n, W.shape[0]),
                                          check_invariants=False)
        return torch.sparse.sampled_addmm(pattern, dense, W.T, beta=0.0).values().reshape(n, k)


def _sparse_rows_matmul(indices: Tensor, weights: Tensor, dense: Tensor, n_rows: int) -> Tensor:
    """out[r] = sum over (n, j) with indices[n, j] == r of weights[n, j] * dense[n]: -> [n_rows d]."""
    n, k = indices.shape
    cols = torch.arange(n, device=indices.device).repeat_interleave(k)
    sparse = torch.sparse_coo_tensor(torch.stack([indices.reshape(-1), cols]), weights.reshape(-1),
                                     (n_rows, n), is_coalesced=False, check_invariants=False)
    return torch.sparse.mm(sparse, dense)


class EncodeAt(torch.autograd.Function):
    """(x_in [n d_in], W_enc [d_in d_sae], b_enc [d_sae], indices [n k], known) -> pre-activations at the
    given latents [n k]: the k dots of each token, computed without the full [n d_sae] product, or read from
    `known` (every pre-activation [n d_sae], detached) when the caller has them.

    The backward only reads the k selected columns: grad W_enc is a sparse product, grad b_enc an
    index_add, grad x_in an embedding_bag over W_enc's columns.
    """

    @staticmethod
    def forward(ctx, x_in: Tensor, W_enc: Tensor, b_enc: Tensor, indices: Tensor, known: Tensor | None,
                support: Tensor | None = None):
        ctx.save_for_backward(x_in, W_enc, indices)
        ctx.support = support
        return known.gather(-1, indices) if known is not None else _gathered_dots(indices, W_enc.T, x_in) + b_enc[indices]

    @staticmethod
    def backward(ctx, grad_values: Tensor, *_):
        x_in, W_enc, indices = ctx.saved_tensors
        d_sae = W_enc.shape[1]
        support = getattr(ctx, "support", None)   # TopKEncode reuses this backward without one
        local = _support_positions(indices, support, d_sae)
        grad_x = grad_W = grad_b = None
        if local is not None:   # dense over the support's columns
            dense = _scatter(local, grad_values, support)
            if ctx.needs_input_grad[0]:
                grad_x = dense @ W_enc[:, support].T
            if ctx.needs_input_grad[1]:
                grad_W = _support_rows(dense.T @ x_in, support, d_sae).T   # latent-major, as W_enc is stored
        else:
            if ctx.needs_input_grad[0]:
                grad_x = sparse_decode(indices, grad_values, W_enc.T)  # W_enc.T is contiguous (latent-major storage)
            if ctx.needs_input_grad[1]:
                grad_W = _sparse_rows_matmul(indices, grad_values, x_in, d_sae).T
        if ctx.needs_input_grad[2]:
            grad_b = torch.zeros(d_sae, dtype=grad_values.dtype, device=grad_values.device)
            grad_b.index_add_(0, indices.reshape(-1), grad_values.reshape(-1))
        return grad_x, grad_W, grad_b, None, None, None


class TopKEncode(torch.autograd.Function):
    """(x_in [n d_in], W_enc [d_in d_sae], b_enc [d_sae], k) -> top-k pre-activations and indices [n k],
    and every pre-activation [n d_sae] (detached: what AuxK chooses dead latents from). The backward is
    EncodeAt's: only the k selected columns are read."""

    @staticmethod
    def forward(ctx, x_in: Tensor, W_enc: Tensor, b_enc: Tensor, k: int):
        pre = torch.addmm(b_enc, x_in, W_enc)
        values, indices = pre.topk(k, dim=-1, sorted=False)
        ctx.save_for_backward(x_in, W_enc, indices)
        ctx.mark_non_differentiable(indices, pre)
        return values, indices, pre

    @staticmethod
    def backward(ctx, grad_values: Tensor, *_):
        return EncodeAt.backward(ctx, grad_values)[:4]


def topk_encode(x_in: Tensor, W_enc: Tensor, b_enc: Tensor, k: int, keep_pre: bool = False):
    """Top-k pre-activations and their latent indices, each [n k], with a sparse backward; with keep_pre,
    also every pre-activation [n d_sae], detached."""
    values, indices, pre = TopKEncode.apply(x_in, W_enc, b_enc, k)
    return (values, indices, pre) if keep_pre else (values, indices)


def encode_at(x_in: Tensor, W_enc: Tensor, b_enc: Tensor, indices: Tensor, known: Tensor | None = None,
              support: Tensor | None = None) -> Tensor:
    """Pre-activations x_in . W_enc[:, indices] + b_enc[indices] [n k], with a sparse backward; `known`: every
    pre-activation [n d_sae] already computed (detached), read instead of recomputing the dots; `support`: as
    for `sparse_decode`."""
    return EncodeAt.apply(x_in, W_enc, b_enc, indices, known, support)
