"""Source activations in graph order, and what an ablated edge carries instead (the ablation).

Sources are kept compact, one tensor per source hook in `Graph.sources` order (a "group" list):

    input       blocks.0.hook_resid_pre   [batch pos 1 d_model]
    a{L}.h*     blocks.L.attn.hook_z      [batch pos n_heads d_head]   (head h's output is z_h W_O[L, h])
    m{L}        blocks.L.hook_mlp_out     [batch pos 1 d_model]

Heads are stored as z, the input of the output projection, so no [batch pos n_heads d_model]
tensor of per-head outputs is formed in a forward pass (it is d_model / d_head times larger);
`head_outputs` projects one layer's z onto the residual stream when a difference is needed. Head
outputs exclude the attention bias b_O, which is the same in every run and so never part of a
clean-minus-corrupt difference. `in_model_space` gives the old stacked view [batch pos n_src d_model].

Ablations (what a source sends along an edge outside the circuit), per group:

    patching         its value on the paired corrupt prompt            [n pos g width]
    mean             its mean over the reference prompts and positions [1 1 g width]
    mean_positional  its mean over the reference prompts, per position [1 pos g width]
    zero             zero                                              [1 1 g width]

The reference prompts for the means are the task's corrupt prompts (on every rank under torchrun).
"""

from __future__ import annotations

import torch

from mechscope import distributed as ddp
from mechscope.errors import InputError
from mechscope.patching import forward_to_answer

ABLATIONS = ("patching", "mean", "mean_positional", "zero")


def source_hook_names(n_layers: int) -> list[str]:
    names = ["blocks.0.hook_resid_pre"]
    for layer in range(n_layers):
        names += [f"blocks.{layer}.attn.hook_z", f"blocks.{layer}.hook_mlp_out"]
    return names


def destination_hooks(graph) -> list[tuple[str, int]]:
    """(hook name, destinations it holds) in `Graph.destinations` order: a0, m0, a1, m1, ..., logits.

    A merged attention destination is hook_attn_in [batch pos d_model]; split ones are the
    q / k / v input points [batch pos heads d_model], one destination per head.
    """
    out = []
    for layer in range(graph.n_layers):
        if graph.qkv:
            out += [(f"blocks.{layer}.hook_{x}_input", n) for x, n in zip("qkv", graph.qkv_heads, strict=True)]
        else:
            out.append((f"blocks.{layer}.hook_attn_in", 1))
        out.append((f"blocks.{layer}.hook_mlp_in", 1))
    return out + [("ln_final.hook_in", 1)]


def is_heads(name: str) -> bool:
    return name.endswith("hook_z")


def group_layer(name: str) -> int:
    """The block index of a source hook name (0 for the input)."""
    return int(name.split(".")[1])


def as_group(name: str, act: torch.Tensor) -> torch.Tensor:
    """A source hook's activation as [batch pos g width] (g = heads with width d_head, or 1 with d_model)."""
    return act if is_heads(name) else act.unsqueeze(2)


def group_list(acts: dict[str, torch.Tensor], n_layers: int) -> list[torch.Tensor]:
    """{source hook name: activation} -> one [batch pos g width] tensor per source hook, graph order."""
    return [as_group(n, acts[n]) for n in source_hook_names(n_layers)]


def head_outputs(z: torch.Tensor, w_o: torch.Tensor) -> torch.Tensor:
    """z [... head d_head] and one layer's W_O [head d_head d_model] -> per-head outputs [... head d_model]."""
    return torch.einsum("...he,hed->...hd", z, w_o.to(z.dtype))


def in_model_space(groups: list[torch.Tensor], w_o: torch.Tensor) -> torch.Tensor:
    """Groups -> every source's output on the residual stream [batch pos n_src d_model] (w_o: [layer head
    d_head d_model]). Materialises every head's output: for tests and small models."""
    names = source_hook_names(w_o.shape[0])
    parts = [head_outputs(g, w_o[group_layer(n)]) if is_heads(n) else g for n, g in zip(names, groups, strict=True)]
    shape = torch.broadcast_shapes(*[p.shape[:2] for p in parts])
    return torch.cat([p.expand(*shape, *p.shape[2:]) for p in parts], dim=2)


def source_activations(model, tokens: torch.Tensor) -> list[torch.Tensor]:
    """Run `tokens` [batch pos] once (up to the final norm); every source as a group list (no grad)."""
    names = source_hook_names(model.cfg.n_layers)
    _, acts = forward_to_answer(model, tokens, names, -1, grad=False)
    return group_list(acts, model.cfg.n_layers)


def ablated_values(model, corrupt_tokens: torch.Tensor, ablation: str) -> list[torch.Tensor]:
    """What every source sends along an ablated edge: a group list, each broadcastable to [batch pos g width]."""
    if ablation not in ABLATIONS:
        raise InputError(f"unknown ablation {ablation!r}: use one of {', '.join(ABLATIONS)}")
    cfg = model.cfg
    if ablation == "zero":
        widths = [(1, cfg.d_model)] + [(cfg.n_heads, cfg.d_head), (1, cfg.d_model)] * cfg.n_layers
        return [torch.zeros(1, 1, g, w, dtype=model.dtype, device=model.device) for g, w in widths]
    groups = source_activations(model, corrupt_tokens)
    if ablation == "patching":
        return groups
    n = groups[0].shape[0]
    count = ddp.all_reduce_sum(torch.tensor(float(n), device=groups[0].device))   # prompts, all ranks
    if ablation == "mean_positional":
        return [ddp.all_reduce_sum(g.sum(0, keepdim=True)) / count for g in groups]
    return [ddp.all_reduce_sum(g.sum((0, 1), keepdim=True)) / (count * g.shape[1]) for g in groups]
