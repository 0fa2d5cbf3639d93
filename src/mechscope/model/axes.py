"""Which axis of each hook point's activation is the head and which the position: the one table.

Every intervention that selects heads or positions (the helpers in `mechscope.model.interventions`,
the batched patching in `mechscope.patching`) builds its index with `where` from this table, so the
axis layout of a hook point is written down exactly once::

    q, k, v, z, result         [batch pos head d]      head axis 2, position axis 1
    q/k/v_input                [batch pos head d_model] head axis 2, position axis 1
    attn_scores, pattern       [batch head q_pos k_pos] head axis 1, position axis 2 (the query)
    resid / attn_out / mlp_*   [batch pos d]           no head axis, position axis 1
    ln*.hook_scale             [batch pos 1]           no head axis, position axis 1

Axis 0 is always the batch row. `RowPositions` selects one position per batch row (pairs, not a grid).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from mechscope.errors import InterventionError
from mechscope.model.names import HookPoint, parse


@dataclasses.dataclass(frozen=True)
class RowPositions:
    """One position per batch row, paired element-wise: row rows[i] at position positions[i].

    For many interventions in one batch that each touch another position (causal tracing restores
    cell (layer, p) in its own rows; a fitted shift sits at each prompt's own subject token).
    rows=None pairs positions[i] with row i, for every row of the batch. A row may appear several
    times (several positions in one row).
    """

    positions: Sequence[int] | torch.Tensor
    rows: Sequence[int] | torch.Tensor | None = None

    def index(self, n_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(rows [k], positions [k]) as long tensors; InterventionError when they do not pair up."""
        positions = torch.as_tensor(self.positions, dtype=torch.long).reshape(-1)
        rows = (torch.arange(len(positions)) if self.rows is None
                else torch.as_tensor(self.rows, dtype=torch.long).reshape(-1))
        if len(rows) != len(positions):
            raise InterventionError(f"RowPositions pairs rows with positions element-wise: got {len(rows)} rows "
                                    f"and {len(positions)} positions")
        if self.rows is None and len(positions) != n_rows:
            raise InterventionError(f"RowPositions without rows needs one position per batch row: got "
                                    f"{len(positions)} positions for {n_rows} rows")
        return rows, positions


Index = int | Sequence[int] | slice | None
"""A selection along one axis: one index, a list of indices, a slice, or None for all of it."""


@dataclasses.dataclass(frozen=True)
class Axes:
    head: int | None      # the head axis of the activation (None: the point has no head axis)
    position: int         # the sequence-position axis (the query position for patterns and scores)


_PER_HEAD = Axes(head=2, position=1)
_PER_QUERY = Axes(head=1, position=2)
_PER_POSITION = Axes(head=None, position=1)

AXES: dict[str, Axes] = {
    "attn.hook_q": _PER_HEAD, "attn.hook_k": _PER_HEAD, "attn.hook_v": _PER_HEAD,
    "attn.hook_z": _PER_HEAD, "attn.hook_result": _PER_HEAD,
    "hook_q_input": _PER_HEAD, "hook_k_input": _PER_HEAD, "hook_v_input": _PER_HEAD,
    "attn.hook_attn_scores": _PER_QUERY, "attn.hook_pattern": _PER_QUERY,
    **dict.fromkeys((
        "hook_embed", "hook_pos_embed", "hook_resid_pre", "hook_resid_mid", "hook_resid_post",
        "hook_attn_out", "hook_mlp_out", "mlp.hook_pre", "mlp.hook_post", "hook_attn_in", "hook_mlp_in",
        "ln1.hook_scale", "ln1.hook_normalized", "ln2.hook_scale", "ln2.hook_normalized",
        "ln_final.hook_scale", "ln_final.hook_normalized", "ln_final.hook_in",
    ), _PER_POSITION),
}
"""Hook site (the name without ``blocks.{L}.``) -> its axes. A new hook point adds its line here."""


def axes_of(hook: HookPoint | str) -> Axes:
    """The axes of a hook point (a HookPoint or a full hook name)."""
    point = parse(hook) if isinstance(hook, str) else hook
    try:
        return AXES[point.site]
    except KeyError:
        raise InterventionError(f"no axis layout is recorded for {point.name!r}, so heads or positions cannot "
                                f"be selected there; add its site to AXES in mechscope/model/axes.py") from None


def where(hook: HookPoint | str, ndim: int, heads: Index = None, positions: Index | RowPositions = None,
          rows: slice | None = None, units: Index = None, n_rows: int | None = None) -> tuple:
    """An index tuple selecting `rows` (a slice of the batch axis), `heads`, `positions` and `units`
    (entries of the last axis: MLP neurons at mlp.hook_pre/post, residual dimensions, d_head entries,
    key positions of a pattern) of an activation of `ndim` dimensions at `hook`; None selects the
    whole axis (an integer selection drops its axis, as in plain indexing).

    When several selections are lists, the index selects their grid (every listed head at every
    listed position), not element-wise pairs. `positions` as `RowPositions` pairs batch rows with
    positions instead (the selection's first axis is the pair; listed heads or units form a grid
    with it); `n_rows`, the batch size, checks a RowPositions without rows.
    """
    index: list = [slice(None)] * ndim
    if rows is not None:
        index[0] = rows
    if units is not None:
        index[-1] = units
    if isinstance(positions, RowPositions):
        if rows is not None:
            raise InterventionError("RowPositions names its own rows; drop rows=")
        row_index, positions = positions.index(n_rows if n_rows is not None else len(positions.positions))
        index[0] = row_index
    if heads is None and positions is None:
        return _grid(index)
    axes = axes_of(hook)
    name = hook if isinstance(hook, str) else hook.name
    if heads is not None:
        if axes.head is None or ndim <= axes.head:
            raise InterventionError(f"{name} has no head axis; drop heads= (select heads at attn.hook_z, "
                                    f"hook_q/k/v, hook_result or hook_pattern)")
        index[axes.head] = heads
    if positions is not None:
        index[axes.position] = positions
    return _grid(index)


def _grid(index: list) -> tuple:
    if isinstance(index[0], torch.Tensor):
        # RowPositions: rows and positions are one paired axis; any listed heads / units broadcast against it
        paired = [axis for axis, sel in enumerate(index) if isinstance(sel, torch.Tensor)]
        lists = [axis for axis, sel in enumerate(index) if isinstance(sel, (list, tuple))]
        for axis in paired:
            index[axis] = index[axis].view([-1] + [1] * len(lists))
        for k, axis in enumerate(lists):
            shape = [1] * (len(lists) + 1)
            shape[k + 1] = -1
            index[axis] = torch.tensor(index[axis]).view(shape)
        return tuple(index)
    lists = [axis for axis, sel in enumerate(index) if isinstance(sel, (list, tuple))]
    if len(lists) > 1:
        # several advanced indices would pair up element-wise; shape each one so they broadcast to a grid
        for k, axis in enumerate(lists):
            shape = [1] * len(lists)
            shape[k] = -1
            index[axis] = torch.tensor(index[axis]).view(shape)
    return tuple(index)


def write(target: torch.Tensor, source: torch.Tensor, hook: HookPoint | str, heads: Index = None,
          positions: Index | RowPositions = None, rows: slice | None = None, units: Index = None) -> torch.Tensor:
    """In place: the selected part of `target` takes the same part of `source`. `source` broadcasts
    to `target`'s shape; with `rows` (a slice of `target`'s batch rows) it holds just those rows.
    Returns `target`."""
    into = where(hook, target.dim(), heads, positions, rows, units, n_rows=target.shape[0])
    source = source.to(target.device, target.dtype)
    if rows is None:
        source = source.expand_as(target)
    target[into] = source[where(hook, source.dim(), heads, positions, units=units, n_rows=source.shape[0])]
    return target
