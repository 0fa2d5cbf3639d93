"""The one attention function behind every architecture's hook_q/k/v/attn_scores/pattern/z.

transformers lets a model use a registered attention function; we register ``"mechscope"`` and
switch every HookedModel to it. The HF modules still compute the projections, RoPE, q/k norms
and the output projection; this function only does ``softmax(q kᵀ · scale + mask) v``.

When no attention-internal hook is active on a layer, it hands the call to transformers' own SDPA
function with the very same mask, so logits are bit-identical to a plain HF (sdpa) forward and
un-hooked attention costs nothing extra. SDPA cannot soft-cap scores (Gemma-2), so a soft-capped
layer always runs the eager computation, op for op as HF's eager path. When a hook asks for internals it runs the eager
computation, op for op as HF's eager path does, and calls the hooks in order q, k, v, scores,
pattern, z. The mask arrives in SDPA's boolean format (or None for a plain causal mask) because we
register SDPA's mask builder under our name.
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

IMPLEMENTATION = "mechscope"
STATE_ATTR = "_mechscope_attn"
"""Attribute set on an attention module while hooks on its internals are active (see hook_points)."""


def _additive_mask(mask: torch.Tensor | None, q_len: int, k_len: int, dtype, device) -> torch.Tensor:
    """SDPA's boolean mask (True = attend) as the additive float mask HF's eager path adds."""
    if mask is None:  # plain causal attention, skipped by the mask builder
        mask = torch.ones(q_len, k_len, dtype=torch.bool, device=device).tril(k_len - q_len)
    if mask.dtype == torch.bool:
        zero = torch.zeros((), dtype=dtype, device=device)
        return torch.where(mask, zero, torch.finfo(dtype).min)
    return mask


def _masked_scores(query: torch.Tensor, key: torch.Tensor, mask: torch.Tensor, scaling: float) -> torch.Tensor:
    """mask + scaling * query @ keyᵀ: [batch head q d], [batch head k d] -> [batch head q k].

    The same sum as HF's eager ``matmul(q, kᵀ) * scaling + mask`` without its two intermediate
    [batch head q k] tensors, which dominate the cost of caching attention internals: one baddbmm
    when the mask is shared by the whole batch (no padding), else scaling and mask in place.
    """
    b, h, q_len, d = query.shape
    k_len = key.shape[2]
    if mask.dim() == 2 or mask.shape[0] == 1:
        bias = mask.expand(b, h, q_len, k_len).reshape(b * h, q_len, k_len)  # a view: strides 0
        out = torch.baddbmm(bias, query.reshape(b * h, q_len, d),
                            key.reshape(b * h, k_len, d).transpose(1, 2), alpha=scaling)
        return out.view(b, h, q_len, k_len)
    return torch.matmul(query, key.transpose(2, 3)).mul_(scaling).add_(mask)


def _unhooked(_short: str, act: torch.Tensor) -> torch.Tensor:
    return act


def hooked_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """query [batch head q d_head], key/value [batch kv_head k d_head] -> (z [batch q head d_head], pattern)."""
    state = getattr(module, STATE_ATTR, None)
    softcap = kwargs.get("softcap")
    if state is None and softcap is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask,
                                      scaling=scaling, dropout=dropout, **kwargs)
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    call = state.call if state is not None else _unhooked
    if state is not None and state.query_scale is not None:  # hooks see x W_Q + b_Q; the scale moves to the scores
        query, scaling = query / state.query_scale, scaling * state.query_scale
    # hooks see [batch pos head d_head], TransformerLens' layout
    query = call("q", query.transpose(1, 2)).transpose(1, 2)
    key = call("k", key.transpose(1, 2)).transpose(1, 2)
    value = call("v", value.transpose(1, 2)).transpose(1, 2)
    n_rep = query.shape[1] // key.shape[1]
    if n_rep > 1:  # grouped-query attention: each kv head serves n_rep query heads
        key = key.repeat_interleave(n_rep, dim=1)
        value = value.repeat_interleave(n_rep, dim=1)
    mask = _additive_mask(attention_mask, query.shape[2], key.shape[2], query.dtype, query.device)
    if mask.dim() == 4:
        mask = mask[:, :, :, : key.shape[2]]
    if softcap is None:  # one fused kernel: mask + scaling * q kᵀ, written once
        scores = _masked_scores(query, key, mask, scaling)
    else:
        scores = torch.matmul(query, key.transpose(2, 3)) * scaling
        scores = torch.tanh(scores / softcap) * softcap + mask
    scores = call("attn_scores", scores)
    pattern = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    pattern = call("pattern", pattern)
    if dropout and module.training:
        pattern = torch.nn.functional.dropout(pattern, p=dropout, training=True)
    z = torch.matmul(pattern, value).transpose(1, 2).contiguous()
    z = call("z", z)
    return z, pattern


def register() -> None:
    """Make ``"mechscope"`` a valid ``attn_implementation`` (idempotent)."""
    AttentionInterface.register(IMPLEMENTATION, hooked_attention)
    AttentionMaskInterface.register(IMPLEMENTATION, sdpa_mask)


register()
