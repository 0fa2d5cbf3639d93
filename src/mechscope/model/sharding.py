"""Shard a HookedModel's parameters across torchrun ranks with FSDP2, for gradients through models
larger than one device.

`shard_across_ranks(model)` applies `torch.distributed.fsdp.fully_shard` to every transformer block
(the adapter table's `layers`) and then to the root HF module, which keeps the embedding, final norm
and unembedding (tied or not) in one unit. Each rank then holds 1/world of every block's parameters;
a block's full weights exist only while it runs (gathered in its forward, gathered again for its
backward, freed after each).

Hooks are unchanged: they are forward hooks on submodules of the blocks, so they run inside the
block's forward and see full activations. The model's outputs and gradients equal the unsharded
model's (up to the order of float sums in the gathered matmuls: none on CPU with gloo).

Reads of weights outside a forward go through `whole(tensor)` (the `W_Q` ... `W_U` views, EAP's
`W_O`): a sharded parameter (a DTensor) is all-gathered on access, a plain tensor is returned as it
is. `model.unembed` and `model.ln_final` call the root's modules, whose weights `gather_root` makes
whole first (embedding, final norm, unembedding). Gathering is a collective: every rank must read
the same weights in the same order, which SPMD analysis code does (every rank runs the same
function on its own prompts). Weight edits (folding, `add_to_W_out`) refuse a sharded model.

Under FSDP every rank must run the same forwards and backwards (a block's gather waits for every
rank). The analyses that are sums over prompts do: each rank runs its share of the prompts.

Usage (under `torchrun --nproc-per-node N`)::

    from mechscope import distributed as ddp
    ddp.init_from_env()
    model = mechscope.load("meta-llama/Llama-3.1-8B", device="cpu", dtype=torch.bfloat16)
    shard_across_ranks(model)                      # to cuda:LOCAL_RANK, 1/N of the blocks per rank
    attribution_patching(model, task)              # every rank returns the whole result
"""

from __future__ import annotations

import torch
from torch.distributed.tensor import DTensor

from mechscope import distributed as ddp
from mechscope.errors import InputError


def whole(t: torch.Tensor | None) -> torch.Tensor | None:
    """The full tensor of a parameter that may be sharded: an FSDP shard (DTensor) is all-gathered
    (a collective: every rank must call it), anything else comes back unchanged."""
    return t.full_tensor() if isinstance(t, DTensor) else t


def is_sharded(model) -> bool:
    """Whether `model` (a HookedModel) has gone through `shard_across_ranks`."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model.hf_model, FSDPModule)


def shard_across_ranks(model, *, device: str | None = None, reshard_after_forward: bool = True):
    """Shard `model` (a HookedModel) in place with FSDP2 over every rank of the default process group;
    returns it.

    device: "cuda" (each rank's shards on cuda:LOCAL_RANK) or "cpu" (gloo); default cuda when
    available, else cpu. The parameters move there from wherever they were loaded (load on CPU to
    shard a model larger than one GPU). Every rank must hold the same weights before the call (load
    the same checkpoint, or seed a random init identically); each keeps only its 1/world of them.
    A model with a device_map, or outside torchrun, is refused (InputError); sharding twice is a no-op.

    reshard_after_forward: free a block's gathered weights after its forward (gathered again for
    the backward). False keeps them until the backward ends: faster, more memory.
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    if getattr(model.hf_model, "hf_device_map", None):
        raise InputError("this model was loaded with a device_map (spread over devices by accelerate); FSDP "
                         "shards a model that each rank loads whole: load it without device_map "
                         "(e.g. device='cpu') and then call shard_across_ranks(model)")
    if not ddp.is_distributed():
        raise InputError("sharding a model needs a process group of 2 or more ranks: launch under "
                         "`torchrun --nproc-per-node N ...` and call mechscope.distributed.init_from_env() "
                         "before shard_across_ranks(model)")
    if is_sharded(model):
        return model
    kind = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu")).type
    if kind == "cuda":
        torch.cuda.set_device(ddp.local_rank())
    mesh = init_device_mesh(kind, (ddp.world_size(),))
    for block in model.structure.layers:
        fully_shard(block, mesh=mesh, reshard_after_forward=reshard_after_forward)
    fully_shard(model.hf_model, mesh=mesh, reshard_after_forward=reshard_after_forward)
    return model


def refuse_if_sharded(model, what: str) -> None:
    """InputError when `model` is sharded: `what` edits weights in place, which is not built for shards."""
    if is_sharded(model):
        raise InputError(f"{what} edits weights in place and is not built for a model sharded across ranks "
                         "(shard_across_ranks): apply it before sharding, or run it on an unsharded model")


def gather_root(model) -> None:
    """Make the root unit's weights (embedding, final norm, unembedding) whole on this rank, so that
    `model.unembed` and `model.ln_final` can call those modules outside a forward. A no-op on an
    unsharded model, or when they are whole already (the root is not resharded after a forward);
    FSDP reshards them when the next backward ends. A collective: every rank must call it."""
    if is_sharded(model):
        model.hf_model.unshard()
