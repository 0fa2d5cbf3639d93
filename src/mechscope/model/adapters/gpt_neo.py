"""GPT-Neo (TinyStories, gpt-neo-125M): learned positions, LayerNorm, GELU MLP, separate q/k/v.

Two things set it apart. Its attention scores are NOT scaled by 1/sqrt(d_head), and every other
layer is "local": a causal window of ``config.window_size`` keys, kept in the module's ``bias``
buffer. And its attention module does not go through transformers' attention interface, so
`install_kernel` wraps the module's own ``_attn``: without hooks on its internals the original runs
(logits bit-identical to HF); with them, `mechscope.model.attention.hooked_attention` runs with
scaling 1 and the layer's own causal/local mask, so hook_q ... hook_z behave as on every model.
"""

from __future__ import annotations

import dataclasses
import types

import torch

from mechscope.model.adapters.gpt2 import GPT2
from mechscope.model.attention import STATE_ATTR, hooked_attention


def _hooked_attn(module, query, key, value, attention_mask=None):
    """GPT-Neo's ``_attn``: query/key/value [batch head pos d_head] -> (z [batch head q d_head], pattern)."""
    if getattr(module, STATE_ATTR, None) is None:
        return module._mechscope_original_attn(query, key, value, attention_mask)
    q_len, k_len = query.shape[-2], key.shape[-2]
    allowed = module.bias[:, :, k_len - q_len:k_len, :k_len]            # [1 1 q k] bool, local window included
    mask = torch.zeros(allowed.shape, dtype=torch.float32, device=query.device)
    mask = mask.masked_fill(~allowed, torch.finfo(torch.float32).min)
    if attention_mask is not None:                                        # additive padding mask (eager format)
        mask = mask + attention_mask
    z, pattern = hooked_attention(module, query.float(), key.float(), value.float(), mask, scaling=1.0)
    return z.transpose(1, 2).to(value.dtype), pattern.to(value.dtype)


def install_kernel(attn: torch.nn.Module) -> None:
    """Route one GPTNeoSelfAttention's ``_attn`` through `_hooked_attn` (idempotent)."""
    if not hasattr(attn, "_mechscope_original_attn"):
        attn._mechscope_original_attn = attn._attn
        attn._attn = types.MethodType(_hooked_attn, attn)


GPT_NEO = dataclasses.replace(  # GPT-2's module names, with nn.Linear q/k/v/out instead of fused Conv1D
    GPT2,
    name="gpt_neo",
    hf_classes=("GPTNeoForCausalLM",),
    attn="attn.attention",
    qkv_layout="separate",
    q_proj="q_proj",
    out_proj="out_proj",
    out_proj_is_conv1d=False,
    mlp_is_conv1d=False,
    attn_kernel=install_kernel,
    n_layers_key="num_layers",
    d_model_key="hidden_size",
    n_heads_key="num_heads",
    d_mlp_key="intermediate_size",
    n_ctx_key="max_position_embeddings",
)
