"""Blocks whose MLP side runs on positions flattened to [batch*pos, ...] (OPT).

The block records the (batch, pos) of the stream it receives; the MLP-side hook points then hand
hooks [batch pos ...] views and pass their results back flat, so every hook sees the shapes it
sees on any other model.
"""

from __future__ import annotations

import torch

from mechscope.model.shared_norm import first_input

MLP_SIDE = {"hook_mlp_in", "ln2.hook_scale", "ln2.hook_normalized", "mlp.hook_pre", "mlp.hook_post", "hook_mlp_out"}
"""Block sites computed on the MLP side (OPT flattens batch and position there)."""


def record_batch_pos(stash: dict):
    """Block pre-hook: remember (batch, pos) of the residual stream entering the block."""
    def hook(_module, args, kwargs):
        stash["batch_pos"] = first_input(args, kwargs).shape[:2]
    return hook


class Unflattened:
    """A HookSet seen through [batch*pos, ...] -> [batch pos ...] views, for blocks whose MLP runs on
    flattened positions: hooks see, and return, the usual [batch pos ...] shapes."""

    def __init__(self, hookset, stash: dict) -> None:
        self.hs, self.stash = hookset, stash

    def apply(self, name: str, act: torch.Tensor) -> torch.Tensor:
        if act.dim() != 2:
            return self.hs.apply(name, act)
        batch, pos = self.stash["batch_pos"]
        return self.hs.apply(name, act.view(batch, pos, -1)).reshape(act.shape)
