"""Thin helpers over torch.distributed, shared by every analysis that runs under torchrun (no-ops in
one process): SAE training, circuit attribution, memory statistics, probes, patching grids and the
report runner.

Launch with `torchrun --nproc-per-node N ...`; the entry point calls `init_from_env()`, which joins
the default process group from the torchrun environment (gloo on CPU, nccl on GPU). An analysis that
is a sum over examples takes `shard(items)` (rank r gets items r, r + world, ...), sums its share, and
`all_reduce_sum`s the sums; work that is not a sum (the report's claims) is split with `balanced_split`
and the per-rank results are collected on rank 0 with `gather_objects`.
"""

from __future__ import annotations

import contextlib
import heapq
import os
from collections.abc import Sequence
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

T = TypeVar("T")

__all__ = ["init_from_env", "is_distributed", "local_only", "rank", "world_size", "local_rank", "shard", "balanced_split",
           "clean_cost", "default_store",
           "gather_objects", "broadcast_object", "all_reduce_mean_", "all_reduce_sum", "all_gather_cat",
           "broadcast_module_", "barrier", "shutdown"]


def init_from_env(backend: str | None = None) -> bool:
    """Join the process group described by torchrun's environment; False when not under torchrun."""
    if dist.is_available() and dist.is_initialized():
        return True
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) <= 1:
        return False
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    dist.init_process_group(backend=backend)
    return True


_local_only = False


@contextlib.contextmanager
def local_only():
    """Within the block this process works alone: `is_distributed()` is False, so every helper here
    (shard, all_reduce_sum, gather_objects, ...) is the one-process version. For work split across
    ranks by task rather than by example (the report's claims): ranks then run different analyses,
    which must not meet in collectives (an all-reduce would pair one claim's sums with another's)."""
    global _local_only
    previous, _local_only = _local_only, True
    try:
        yield
    finally:
        _local_only = previous


def is_distributed() -> bool:
    return not _local_only and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def default_store():
    """The process group's key-value store (atomic `add`, `get`, `set`; what torchrun's ranks met through),
    or None outside torchrun or where this PyTorch does not expose it."""
    if not is_distributed():
        return None
    try:
        return dist.distributed_c10d._get_default_store()
    except (AttributeError, RuntimeError, ValueError):
        return None


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    """This process's index on its machine (torchrun's LOCAL_RANK): the GPU it should use."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def shard(items: Sequence[T] | Tensor) -> Sequence[T] | Tensor:
    """This rank's disjoint share of `items`: items[rank::world_size] (all of them in one process).
    The shares of all ranks together are `items`, each element exactly once."""
    if not is_distributed():
        return items
    return items[rank()::world_size()]


def balanced_split(costs: Sequence[float], n_parts: int) -> list[list[int]]:
    """Indices of `costs` split into `n_parts` lists whose total costs are close (longest job first to
    the least loaded part; ties go to the lower part, so every rank computes the same split).
    Each list keeps its indices in increasing order. Non-finite or negative costs count as 0."""
    parts: list[list[int]] = [[] for _ in range(n_parts)]
    load = [(0.0, p) for p in range(n_parts)]
    order = sorted(range(len(costs)), key=lambda i: (-clean_cost(costs[i]), i))
    for i in order:
        total, p = heapq.heappop(load)
        parts[p].append(i)
        heapq.heappush(load, (total + clean_cost(costs[i]), p))
    return [sorted(p) for p in parts]


def clean_cost(cost: float) -> float:
    """A cost as a number to sort and add: non-finite or negative costs count as 0."""
    cost = float(cost)
    return cost if cost == cost and 0.0 <= cost < float("inf") else 0.0


def gather_objects(obj: Any, dst: int = 0) -> list[Any] | None:
    """Every rank's `obj` (picklable) as a list in rank order on rank `dst`, None on the others;
    [obj] in one process. Uses the default group (gloo pickles through CPU)."""
    if not is_distributed():
        return [obj]
    out = [None] * world_size() if rank() == dst else None
    dist.gather_object(obj, out, dst=dst)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank `src`'s `obj` on every rank (picklable)."""
    if not is_distributed():
        return obj
    box = [obj if rank() == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_reduce_mean_(tensors: list[Tensor]) -> None:
    """Average tensors across processes in place (one flat buffer, one collective)."""
    if not is_distributed() or not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for t in tensors:
        t.copy_(flat[offset: offset + t.numel()].view_as(t))
        offset += t.numel()


def all_reduce_sum(t: Tensor) -> Tensor:
    """The sum of `t` over ranks (a new tensor; `t` itself in one process)."""
    if is_distributed():
        t = t.clone()
        dist.all_reduce(t)
    return t


def all_gather_cat(x: Tensor) -> Tensor:
    """Concatenate equal-shaped x [n ...] from every rank in rank order -> [world*n ...]."""
    if not is_distributed():
        return x
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def broadcast_module_(module: nn.Module, src: int = 0) -> None:
    """Copy parameters and buffers from rank `src` to every rank."""
    if not is_distributed():
        return
    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src)


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def shutdown() -> None:
    """Leave the process group cleanly; a process that exits with gloo threads alive can abort."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
