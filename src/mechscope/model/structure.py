"""Resolve an architecture table's module paths into the modules of one loaded model."""

from __future__ import annotations

import dataclasses

import torch.nn as nn

from mechscope.errors import UnsupportedArchitectureError
from mechscope.model.adapters import ArchitectureTable


@dataclasses.dataclass
class BlockModules:
    block: nn.Module
    ln1: nn.Module
    attn: nn.Module
    out_proj: nn.Module
    ln2: nn.Module       # the same module as ln1 when one norm feeds parallel attention and MLP
    mlp: nn.Module
    mlp_pre: nn.Module   # output = hook_pre
    mlp_out: nn.Module   # input = hook_post
    attn_writer: nn.Module  # output = hook_attn_out (the attention module, or a norm after it)
    mlp_writer: nn.Module   # output = hook_mlp_out (the MLP module, or a norm / projection after it)


@dataclasses.dataclass
class Structure:
    embed: nn.Module
    pos_embed: nn.Module | None
    layers: nn.ModuleList
    final_norm: nn.Module
    unembed: nn.Module
    blocks: list[BlockModules]

    @classmethod
    def resolve(cls, hf_model: nn.Module, table: ArchitectureTable) -> Structure:
        def get(root: nn.Module, path: str) -> nn.Module:
            try:
                return root.get_submodule(path)
            except AttributeError as err:
                raise UnsupportedArchitectureError(
                    f"the {table.name} table expects a module at {path!r} in {type(root).__name__}, "
                    f"but it is missing ({err}). The model's layout differs from the table; see "
                    "docs/adding-an-architecture.md."
                ) from None

        layers = get(hf_model, table.layers)
        blocks = []
        for block in layers:
            attn, mlp = get(block, table.attn), get(block, table.mlp)
            blocks.append(BlockModules(
                block=block, ln1=get(block, table.ln1), attn=attn, out_proj=get(attn, table.out_proj),
                ln2=get(block, table.ln2 or table.ln1), mlp=mlp, mlp_pre=get(mlp, table.pre_hook_mlp_name),
                mlp_out=get(mlp, table.mlp_out),
                attn_writer=get(block, table.attn_out_module) if table.attn_out_module else attn,
                mlp_writer=get(block, table.mlp_out_module) if table.mlp_out_module else mlp,
            ))
        return cls(
            embed=get(hf_model, table.embed),
            pos_embed=get(hf_model, table.pos_embed) if table.pos_embed else None,
            layers=layers,
            final_norm=get(hf_model, table.final_norm),
            unembed=get(hf_model, table.unembed),
            blocks=blocks,
        )
