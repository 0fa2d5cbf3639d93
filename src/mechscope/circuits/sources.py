"""Source activations in graph order, and what an ablated edge carries instead (the ablation).

Every source's output, for a batch, as one tensor [batch pos n_src d_model] whose axis 2 follows
`Graph.sources`: the input (blocks.0.hook_resid_pre), then per layer each head's
attn.hook_result and the MLP's hook_mlp_out. Head outputs exclude the attention bias b_O, which
is the same in every run and so never part of a clean-minus-corrupt difference.

Ablations (what a source sends along an edge outside the circuit):

    patching         its value on the paired corrupt prompt            [n pos n_src d]
    mean             its mean over the reference prompts and positions [1 1 n_src d]
    mean_positional  its mean over the reference prompts, per position [1 pos n_src d]
    zero             zero                                              [1 1 n_src d]

The reference prompts for the means are the task's corrupt prompts (on every rank under torchrun).
"""

from __future__ import annotations

import torch

from mechscope import distributed as ddp
from mechscope.errors import InputError

ABLATIONS = ("patching", "mean", "mean_positional", "zero")


def source_hook_names(n_layers: int) -> list[str]:
    names = ["blocks.0.hook_resid_pre"]
    for layer in range(n_layers):
        names += [f"blocks.{layer}.attn.hook_result", f"blocks.{layer}.hook_mlp_out"]
    return names


def destination_hook_names(n_layers: int) -> list[str]:
    """In `Graph.destinations` order: a0, m0, a1, m1, ..., logits."""
    names = []
    for layer in range(n_layers):
        names += [f"blocks.{layer}.hook_attn_in", f"blocks.{layer}.hook_mlp_in"]
    return names + ["ln_final.hook_in"]


def as_group(name: str, act: torch.Tensor) -> torch.Tensor:
    """A source hook's activation as [batch pos n d_model] (n = heads, or 1)."""
    return act if name.endswith("hook_result") else act.unsqueeze(2)


def stack_sources(acts: dict[str, torch.Tensor], n_layers: int) -> torch.Tensor:
    """{source hook name: activation} -> [batch pos n_src d_model] in graph order."""
    return torch.cat([as_group(n, acts[n]) for n in source_hook_names(n_layers)], dim=2)


def source_activations(model, tokens: torch.Tensor) -> torch.Tensor:
    """Run `tokens` [batch pos] once; every source's output [batch pos n_src d_model] (no grad)."""
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names=source_hook_names(model.cfg.n_layers))
    return stack_sources({n: cache[n] for n in source_hook_names(model.cfg.n_layers)}, model.cfg.n_layers)


def ablated_values(model, corrupt_tokens: torch.Tensor, ablation: str) -> torch.Tensor:
    """What every source sends along an ablated edge, broadcastable to [batch pos n_src d_model]."""
    if ablation not in ABLATIONS:
        raise InputError(f"unknown ablation {ablation!r}: use one of {', '.join(ABLATIONS)}")
    if ablation == "zero":
        cfg = model.cfg
        return torch.zeros(1, 1, 1 + cfg.n_layers * (cfg.n_heads + 1), cfg.d_model,
                           dtype=model.dtype, device=model.device)
    acts = source_activations(model, corrupt_tokens)
    if ablation == "patching":
        return acts
    count = ddp.all_reduce_sum(torch.tensor(float(acts.shape[0]), device=acts.device))   # prompts, all ranks
    if ablation == "mean_positional":
        return ddp.all_reduce_sum(acts.sum(0, keepdim=True)) / count
    return ddp.all_reduce_sum(acts.sum((0, 1), keepdim=True)) / (count * acts.shape[1])
