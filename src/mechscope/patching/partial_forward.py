"""Many patched runs in one forward pass, each computed from its patched layer onward only.

A patching grid asks for hundreds of runs that differ from one base run by one activation each.
They share everything below the patched layer, so we run the base prompts once up to layer L and
only there grow the batch: a `GrowBatch` hook on ``blocks.L.hook_resid_pre`` (the model's hook
system allows rows to be added there) appends one copy of the base rows per site patched at layer
L (patching them right there for ``resid_pre``; hooks inside the block patch the other sites).
Rows for sites at later layers are appended later, so a site at layer L costs (n_layers - L)
block-rows instead of n_layers. The forward also stops at the final norm (we raise once
``ln_final.hook_normalized`` is seen) and unembeds only the answer position, which saves the full
[rows pos d_vocab] unembedding.

Why this is sound: a decoder block treats batch rows independently, and its other inputs
(position ids, rotary tables, the causal mask, which is None for unpadded prompts under SDPA
masking) broadcast over the batch, so a block can receive more rows than the model's input had.
If a block does receive a per-row tensor (a padding mask, say) we cannot grow the batch (the hook
system raises BatchGrowthError); then we fall back to expanding the input ("full" mode: every row
runs every layer, same numbers, slower).
The same fallback handles sites before the first block (hook_embed, hook_pos_embed).

Trade-off against the simpler alternative (expand the input batch and patch at layer L): the same
numbers, but rows below layer L are recomputed once per site; on a 12-layer grid that is about
twice the block compute. Both modes are here (``skip_lower_layers``) and tests check they agree
with each other and with one-run-per-site patching.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable

import torch

from mechscope.errors import BatchGrowthError, InputError
from mechscope.model.axes import axes_of, where
from mechscope.model.hook_points import GrowBatch
from mechscope.model.names import parse
from mechscope.progress import progress

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""score(answer_logits [rows d_vocab], prompt_index [rows]) -> [rows]"""


@dataclasses.dataclass(frozen=True)
class Site:
    """One activation to patch: a hook point, optionally one position and/or one head.

    pos indexes the sequence position (the query position for hook_pattern / hook_attn_scores);
    head indexes the head axis (a key/value head for hook_k / hook_v on grouped-query models).
    None means the whole axis.
    """

    hook: str
    pos: int | None = None
    head: int | None = None

    def index(self) -> tuple:
        """Index into the activation after the batch axis (axes from `mechscope.model.axes`)."""
        point = parse(self.hook)
        ndim = 1 + max(axes_of(point).position, axes_of(point).head or 0)
        return where(point, ndim, heads=self.head, positions=self.pos)[1:]


@dataclasses.dataclass
class PartialForwardConfig:
    """skip_lower_layers: grow the batch at the patched layer (False: expand at the input).
    max_rows: most batch rows in one forward (sites are chunked to fit)."""

    skip_lower_layers: bool = True
    max_rows: int = 512


class _Stop(Exception):
    """Raised from the final-norm hook: everything we need has been computed."""


def expansion_layer(model, hook: str) -> int:
    """The block at whose input rows for this hook's sites are created (-1: the model input)."""
    point = parse(hook)
    if point.layer is not None:
        return point.layer
    if hook.startswith("ln_final"):
        return model.cfg.n_layers - 1
    return -1


def run_patched(model, base_tokens: torch.Tensor, sources: dict[str, torch.Tensor], sites: list[Site],
                score: ScoreFn, answer_pos: int = -1,
                config: PartialForwardConfig | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Score every site's patched run.

    base_tokens: [n pos] the run that gets patched; sources: hook name -> [n ...] activations to
    patch in (from another run); sites: what to patch, one run per site.
    Returns (scores [n_sites n], base_scores [n]).
    """
    config = config or PartialForwardConfig()
    n = base_tokens.shape[0]
    for site in sites:
        if site.hook not in sources:
            raise InputError(f"no source activation for {site.hook}; cache it on the source run first")
    per_chunk = max(1, config.max_rows // n - 1)
    order = sorted(range(len(sites)), key=lambda i: expansion_layer(model, sites[i].hook))
    out = torch.empty(len(sites), n)
    base_scores = None
    for start in progress(range(0, len(order), per_chunk), desc=f"patching {len(sites)} sites",
                          total=-(-len(order) // per_chunk)):
        chunk = order[start:start + per_chunk]
        chunk_sites = [sites[i] for i in chunk]
        if config.skip_lower_layers:
            try:
                scores = _forward_chunk(model, base_tokens, sources, chunk_sites, score, answer_pos, grow=True)
            except BatchGrowthError:
                scores = _forward_chunk(model, base_tokens, sources, chunk_sites, score, answer_pos, grow=False)
        else:
            scores = _forward_chunk(model, base_tokens, sources, chunk_sites, score, answer_pos, grow=False)
        base_scores = scores[0]
        out[chunk] = scores[1:]
    if base_scores is None:  # no sites: just the base run
        base_scores = _forward_chunk(model, base_tokens, sources, [], score, answer_pos, grow=False)[0]
    return out, base_scores


def _forward_chunk(model, base_tokens, sources, sites, score, answer_pos, *, grow: bool) -> torch.Tensor:
    """One forward for the base rows plus one block of n rows per site. Returns [1 + n_sites, n]."""
    n = base_tokens.shape[0]
    layer_of = [expansion_layer(model, s.hook) if grow else -1 for s in sites]
    # block b (1-based) of rows belongs to site b-1; blocks are created in layer order
    new_at: dict[int, list[int]] = defaultdict(list)
    for i, layer in enumerate(layer_of):
        new_at[layer].append(i)
    created_before: dict[int, int] = {}
    count = 1 + len(new_at.get(-1, []))
    for layer in range(model.cfg.n_layers):
        created_before[layer] = count
        count += len(new_at.get(layer, []))
    block_of = {}  # site index -> block index (rows block*n .. block*n+n)
    b = 1
    for layer in [-1, *range(model.cfg.n_layers)]:
        for i in new_at.get(layer, []):
            block_of[i] = b
            b += 1

    def rows(i: int) -> slice:
        return slice(block_of[i] * n, block_of[i] * n + n)

    by_hook: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(sites):
        by_hook[s.hook].append(i)

    def make_patch(hook_name: str, in_pre_hook: bool = False):
        idxs = by_hook[hook_name]
        src = sources[hook_name]

        def patch(act: torch.Tensor, _hook=None):
            act = act.clone() if not in_pre_hook else act
            for i in idxs:
                ix = sites[i].index()
                act[(rows(i), *ix)] = src[(slice(None), *ix)].to(act.device, act.dtype)
            return act
        return patch

    fwd: dict[str, list] = defaultdict(list)
    pre_patch: dict[int, Callable] = {}
    for hook_name in by_hook:
        point = parse(hook_name)
        if grow and point.layer is not None and point.site == "hook_resid_pre":
            pre_patch[point.layer] = make_patch(hook_name, in_pre_hook=True)
        else:
            fwd[hook_name].append(make_patch(hook_name))
    if grow:
        for layer in range(model.cfg.n_layers):
            k = len(new_at.get(layer, []))
            if k:   # runs before any other hook on this point: the rows exist before they are patched
                fwd[f"blocks.{layer}.hook_resid_pre"].insert(
                    0, GrowBatch(grow_rows(n, created_before[layer], k, pre_patch.get(layer))))
    final: dict[str, torch.Tensor] = {}

    def capture(act, _hook):
        final["normalized"] = act[:, answer_pos]
        raise _Stop

    fwd["ln_final.hook_normalized"].append(capture)

    copies = len(new_at.get(-1, [])) if grow else len(sites)
    tokens = base_tokens.repeat(1 + copies, 1)
    with torch.no_grad(), model.hooks(fwd=dict(fwd)):
        try:
            model(tokens)
        except _Stop:
            pass
    with torch.no_grad():
        logits = model.unembed(final["normalized"])                    # [rows d_vocab]
        total = logits.shape[0] // n
        prompt_index = torch.arange(n).repeat(total)
        scores = score(logits, prompt_index).float().cpu().reshape(total, n)
    order = [0] + [block_of[i] for i in range(len(sites))]
    return scores[order]


def grow_rows(n: int, existing_blocks: int, k: int, patch: Callable | None):
    """A hook on a block's resid_pre that appends k copies of the n base rows (then patches them)."""

    def hook(hidden, _hook):
        if hidden.shape[0] != existing_blocks * n:
            raise InputError(f"partial forward bookkeeping: expected {existing_blocks * n} rows, "
                             f"got {hidden.shape[0]}")
        grown = torch.cat([hidden, hidden[:n].repeat(k, 1, 1)])
        return patch(grown) if patch is not None else grown

    return hook
