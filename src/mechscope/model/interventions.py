"""Ready-made hook functions for the common interventions.

Each returns a function ``fn(activation, hook) -> replacement`` for ``model.hooks(fwd={name: fn})``.
`heads` / `positions` restrict the intervention to some heads (axis 2 of [batch pos head d]
activations, axis 1 of [batch head q k] patterns) or positions (axis 1; axis 2 for patterns);
None means all.

    with model.hooks(fwd={"blocks.3.attn.hook_z": zero_ablate(heads=[4])}):
        logits = model(tokens)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mechscope.model.names import HookPoint

Index = int | Sequence[int] | slice | None


def _is_pattern(hook: HookPoint) -> bool:
    return hook.site in ("attn.hook_pattern", "attn.hook_attn_scores")


def _where(act: torch.Tensor, hook: HookPoint, heads: Index, positions: Index) -> tuple:
    """An index tuple selecting `heads` and `positions` of `act`."""
    index: list = [slice(None)] * act.dim()
    if _is_pattern(hook):
        head_axis, pos_axis = 1, 2
    else:
        head_axis, pos_axis = 2, 1
    if heads is not None:
        if act.dim() < 4:
            raise ValueError(f"{hook.name} has no head axis; drop heads=")
        index[head_axis] = [heads] if isinstance(heads, int) else heads
    if positions is not None:
        index[pos_axis] = [positions] if isinstance(positions, int) else positions
    if isinstance(index[head_axis], list) and isinstance(index[pos_axis], list):
        # two advanced indices would pair up element-wise; select the grid instead
        index[head_axis] = torch.tensor(index[head_axis]).view(-1, 1) if head_axis < pos_axis else \
            torch.tensor(index[head_axis])
        index[pos_axis] = torch.tensor(index[pos_axis]) if head_axis < pos_axis else \
            torch.tensor(index[pos_axis]).view(-1, 1)
    return tuple(index)


def zero_ablate(heads: Index = None, positions: Index = None):
    """Set the selected part of the activation to zero."""
    def fn(act, hook):
        act = act.clone()
        act[_where(act, hook, heads, positions)] = 0
        return act
    return fn


def mean_ablate(means: dict[str, torch.Tensor] | torch.Tensor, heads: Index = None, positions: Index = None):
    """Replace the selected part by a mean activation (broadcastable to the activation).

    `means`: one tensor, or a dict hook name -> tensor (e.g. ``{n: cache[n].mean(0) for n in names}``
    from a reference dataset).
    """
    def fn(act, hook):
        mean = means[hook.name] if isinstance(means, dict) else means
        full = mean.to(act.dtype).expand_as(act)
        act = act.clone()
        where = _where(act, hook, heads, positions)
        act[where] = full[where]
        return act
    return fn


def patch_from(cache, heads: Index = None, positions: Index = None):
    """Take the selected part from another run's cache (same hook name, same shape): activation patching."""
    def fn(act, hook):
        source = cache[hook.name].to(act.device, act.dtype)
        if source.shape != act.shape:
            raise ValueError(f"patch source for {hook.name} has shape {tuple(source.shape)}, run has "
                             f"{tuple(act.shape)}: patch between inputs of the same shape")
        act = act.clone()
        where = _where(act, hook, heads, positions)
        act[where] = source[where]
        return act
    return fn


def resample_ablate(cache, generator: torch.Generator | None = None, heads: Index = None, positions: Index = None):
    """Replace each batch row's selected part by that of a random other row of `cache` (resample ablation)."""
    def fn(act, hook):
        source = cache[hook.name].to(act.device, act.dtype)
        rows = torch.randint(0, source.shape[0], (act.shape[0],), generator=generator)
        act = act.clone()
        where = _where(act, hook, heads, positions)
        act[where] = source[rows][where]
        return act
    return fn


def add_vector(vector: torch.Tensor, scale: float = 1.0, positions: Index = None):
    """Add `scale * vector` ([d_model] or broadcastable) to the residual-like activation: steering."""
    def fn(act, hook):
        act = act.clone()
        index = (slice(None), positions if positions is not None else slice(None))
        if isinstance(positions, int):
            index = (slice(None), [positions])
        act[index] = act[index] + scale * vector.to(act.device, act.dtype)
        return act
    return fn
