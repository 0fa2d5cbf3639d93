"""The intervention vocabulary: ablate (zero, mean, resample), patch (from a cache or a tensor), steer.

Each returns a function ``fn(activation, hook) -> replacement`` for ``model.hooks(fwd={name: fn})``.
`heads` / `positions` restrict the intervention to some heads or positions (an int, a list, a
slice; None means all; `RowPositions` for one position per batch row), and `units` to entries of the last axis (e.g. MLP neurons at mlp.hook_post); which axis is the head and which the position at each hook point comes from
the one table in `mechscope.model.axes` (e.g. axis 2 / 1 of [batch pos head d] activations, axis
1 / 2 of [batch head q k] patterns, where the position is the query).

    with model.hooks(fwd={"blocks.3.attn.hook_z": zero_ablate(heads=[4])}):
        logits = model(tokens)

Every analysis that ablates or patches builds its hooks from these (or, for several row blocks in
one batch, from `mechscope.model.axes.write`), so there is one place to read what they do.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from mechscope.errors import InterventionError
from mechscope.model.axes import Index, RowPositions, where, write

Source = Mapping[str, torch.Tensor] | torch.Tensor
"""Where replacement values come from: a cache (anything indexed by hook name, read when the hook
runs) or one tensor for every hooked point."""


def _source_for(source: Source, hook) -> torch.Tensor:
    return source if isinstance(source, torch.Tensor) else source[hook.name]


def zero_ablate(heads: Index = None, positions: Index | RowPositions = None, *, units: Index = None):
    """Set the selected part of the activation to zero."""
    def fn(act, hook):
        act = act.clone()
        act[where(hook, act.dim(), heads, positions, units=units, n_rows=act.shape[0])] = 0
        return act
    return fn


def mean_ablate(means: Source, heads: Index = None, positions: Index | RowPositions = None, *,
                units: Index = None):
    """Replace the selected part by a mean activation (broadcastable to the activation).

    `means`: one tensor, or a dict hook name -> tensor (e.g. ``{n: cache[n].mean(0) for n in names}``
    from a reference dataset).
    """
    def fn(act, hook):
        return write(act.clone(), _source_for(means, hook), hook, heads, positions, units=units)
    return fn


def patch_from(cache: Source, heads: Index = None, positions: Index | RowPositions = None, *, units: Index = None):
    """Take the selected part from another run (same shape): activation patching.

    `cache`: that run's ActivationCache (or any mapping hook name -> tensor, read when the hook
    runs), or one tensor of the activation's shape. With ``positions=RowPositions(positions, rows)``
    row rows[i] takes position positions[i] of the source's same row (many patches in one batch;
    a one-row source run can be given as ``t.expand(n_rows, *t.shape[1:])``).
    """
    def fn(act, hook):
        source = _source_for(cache, hook)
        if source.shape != act.shape:
            raise InterventionError(f"patch source for {hook.name} has shape {tuple(source.shape)}, run has "
                                    f"{tuple(act.shape)}: patch between inputs of the same shape")
        return write(act.clone(), source, hook, heads, positions, units=units)
    return fn


def resample_ablate(cache, generator: torch.Generator | None = None, heads: Index = None, positions: Index = None,
                    *, units: Index = None):
    """Replace each batch row's selected part by that of a random other row of `cache` (resample ablation)."""
    def fn(act, hook):
        source = _source_for(cache, hook)
        rows = torch.randint(0, source.shape[0], (act.shape[0],), generator=generator)
        return write(act.clone(), source[rows], hook, heads, positions, units=units)
    return fn


def add_vector(vector: torch.Tensor, scale: float = 1.0, positions: Index | RowPositions = None):
    """Add `scale * vector` ([d_model] or broadcastable to the selected part) to the residual-like
    activation: steering. Gradients flow to `vector` (a fitted shift). With RowPositions the selected
    part is [k d] (one row per pair), so `vector` may also be one vector per pair."""
    def fn(act, hook):
        act = act.clone()
        index = where(hook, act.dim(), positions=positions, n_rows=act.shape[0])
        act[index] = act[index] + scale * vector.to(act.device, act.dtype)
        return act
    return fn
