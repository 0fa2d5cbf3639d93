"""Per-head query, key and value inputs (TransformerLens' ``use_split_qkv_input``), on request.

    blocks.L.hook_q_input   [batch pos head d_model]      what head h's query projection reads
    blocks.L.hook_k_input   [batch pos kv_head d_model]   what each key head's projection reads
    blocks.L.hook_v_input   [batch pos kv_head d_model]   what each value head's projection reads

Each is the pre-norm residual the attention reads (``hook_attn_in``, after any replacement there),
copied once per head. When one is asked for, each head's part of that projection's output is
rebuilt from its own copy x_h as

    out_h = stop_grad(P_h) + f_h(x_h) - stop_grad(f_h(x)),    f_h(y) = ln1(y) W_h + b_h

where P is the module's own output and x the unsplit input. f_h (the norm's ``forward`` on [batch
pos head d_model], so norm hooks do not fire again, and the module's live weights) carries every
gradient: a gradient with respect to a copy counts only the path through that head's input (the
shared path through ln1 is cut, the weights still get theirs). Unreplaced, f_h(x_h) and f_h(x)
are one operation on equal inputs, their difference is exactly zero and the output is the
module's own to the bit; a replacement of one head's copy reaches that head's q, k or v alone.

Grouped-query attention: k and v inputs are per key/value head (n_kv_heads copies), as
TransformerLens does unless ``ungroup_grouped_query_attention`` is set; query head h reads kv head
h // (n_heads / n_kv_heads). Memory: n_heads (or n_kv_heads) x d_model per position per input.
A replacement of ``ln1.hook_normalized`` still reaches a split projection's value (through P) but
not its gradient, which flows to the copies only (so frozen_hooks' norm freezing does not apply
to split inputs).
"""

from __future__ import annotations

import torch

from mechscope.model.weights import per_head_qkv

SPLIT_SITES = ("hook_q_input", "hook_k_input", "hook_v_input")
ATTN_IN_KEY = "attn_in"   # where the attention input's pre-hook leaves what the attention reads


def _outputs_of(table) -> list[tuple[str, tuple[int, ...]]]:
    """(projection path, which of q/k/v (0/1/2) its output holds) for the table's layout."""
    if table.qkv_layout == "separate":
        return [(table.q_proj, (0,)), (table.k_proj, (1,)), (table.v_proj, (2,))]
    return [(table.q_proj, (0, 1, 2))]


def _unpack(layout: str, out: torch.Tensor, kinds: tuple[int, ...], heads: list[int]) -> list[torch.Tensor]:
    """A projection's output [batch pos width] -> one [batch pos n d_head] per kind."""
    if layout == "fused_per_head":                       # [head (q|k|v) d_head]
        per = out.view(*out.shape[:-1], heads[0], 3, -1)
        return [per[..., i, :] for i in range(3)]
    sizes = [heads[k] for k in kinds]
    d_head = out.shape[-1] // sum(sizes)
    parts = out.split([n * d_head for n in sizes], dim=-1)
    return [p.view(*p.shape[:-1], n, d_head) for p, n in zip(parts, sizes, strict=True)]


def _pack(layout: str, parts: list[torch.Tensor]) -> torch.Tensor:
    if layout == "fused_per_head":
        return torch.stack(parts, dim=-2).flatten(-3)
    return torch.cat([p.flatten(-2) for p in parts], dim=-1)


def projection_hooks(hookset, prefix: str, table, cfg, block, stash: dict, sites: set[str]) -> list:
    """[(projection module, forward hook)] that rebuild the projections of `block` whose input is split.

    `prefix` is ``"blocks.L."``; `stash[ATTN_IN_KEY]` must hold what the attention read this forward.
    """
    heads = [cfg.n_heads, cfg.n_kv_heads, cfg.n_kv_heads]
    layout, attn, norm = table.qkv_layout, block.attn, block.ln1
    out = []
    for path, kinds in _outputs_of(table):
        split = [k for k in kinds if SPLIT_SITES[k] in sites]
        if not split:
            continue

        def hook(_module, _args, output, kinds=kinds, split=split):
            x = stash[ATTN_IN_KEY]                                          # [batch pos d_model]
            ws, bs = per_head_qkv(table, cfg, attn)
            parts = _unpack(layout, output, kinds, heads)
            for k in split:
                base = x.unsqueeze(-2).expand(*x.shape[:-1], heads[k], x.shape[-1]).clone()
                copies = hookset.apply(prefix + SPLIT_SITES[k], base.clone())  # [batch pos n d_model]
                w = ws[k].to(x.dtype)
                own = torch.einsum("bpnd,nde->bpne", norm.forward(copies), w) + bs[k]
                with torch.no_grad():   # the same computation on the unreplaced copies
                    ref = torch.einsum("bpnd,nde->bpne", norm.forward(base), w) + bs[k]
                i = kinds.index(k)
                parts[i] = parts[i].detach() + (own - ref)
            return _pack(layout, parts)
        out.append((attn.get_submodule(path), hook))
    return out
