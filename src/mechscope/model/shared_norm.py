"""Hook points of parallel blocks whose attention and MLP read ONE norm (Phi-1/2, GPT-J).

``x -> ln(x) -> attn and mlp``. The sublayer-input points must still reach one sublayer alone, so
they are not put on the shared norm but on each reader:

    ln1.hook_normalized / ln2.hook_normalized   the attention's / the MLP's input (pre-hook on that
                                                module): a replacement reaches that sublayer only
    hook_attn_in / hook_mlp_in                  the residual the norm read, as this sublayer's own
                                                copy: the sublayer's input is recomputed as
                                                ln(copy) (the norm's ``forward``, so its hooks do not
                                                fire twice), which puts the copy in the autograd graph
                                                of that sublayer alone
    ln1.hook_scale / ln2.hook_scale             the shared norm's divisor (the same tensor twice);
                                                it reports the stream the norm read, before any
                                                hook_attn_in / hook_mlp_in replacement
"""

from __future__ import annotations

import torch

from mechscope.model.split_qkv import ATTN_IN_KEY


def first_input(args: tuple, kwargs: dict) -> torch.Tensor:
    """The hidden states a module was called with, positionally or as ``hidden_states=``."""
    return args[0] if args else kwargs["hidden_states"]


def with_first_input(args: tuple, kwargs: dict, new: torch.Tensor) -> tuple[tuple, dict]:
    if args:
        return (new, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": new}


def record_norm_input(stash: dict):
    """Pre-hook on the shared norm: keep the residual it reads."""
    def hook(_module, args, kwargs):
        stash["norm_in"] = first_input(args, kwargs)
    return hook


def own_copy_input(hookset, name: str, norm: torch.nn.Module, stash: dict, keep: dict | None = None):
    """Pre-hook on a sublayer reading the shared norm: its input becomes norm(hooked copy of the residual).
    The hooked copy is also left in `keep` (under split_qkv.ATTN_IN_KEY) when given."""
    def hook(_module, args, kwargs):
        x = stash["norm_in"]
        copy = hookset.apply(name, x.view_as(x))
        if keep is not None:
            keep[ATTN_IN_KEY] = copy
        return with_first_input(args, kwargs, norm.forward(copy))
    return hook
