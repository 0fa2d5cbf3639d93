"""Thin helpers over torch.distributed for data-parallel SAE training (no-ops in one process).

Launch with `torchrun --nproc-per-node N script.py`; the trainer calls `init_from_env()` which
initialises the default process group from the torchrun environment (gloo on CPU, nccl on GPU).
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import Tensor, nn


def init_from_env(backend: str | None = None) -> bool:
    """Join the process group described by torchrun's environment; False when not under torchrun."""
    if dist.is_available() and dist.is_initialized():
        return True
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) <= 1:
        return False
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    dist.init_process_group(backend=backend)
    return True


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


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
