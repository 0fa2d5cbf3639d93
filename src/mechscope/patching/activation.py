"""Activation patching grids: (layer, position) for residual-stream sites, (layer, head) for heads.

Denoising (default, as TransformerLens' ``patching`` module): run the corrupt prompt, patch in
one activation from the clean run, and see how much of the clean behaviour comes back. Noising:
run the clean prompt, patch in the corrupt activation, and see how much breaks. Either way the
grid holds the fraction of the clean-vs-corrupt metric gap that the site carries:

    denoise: (patched - corrupt) / (clean - corrupt)      noise: (clean - patched) / (clean - corrupt)

Usage::

    grid = activation_patching(model, task, "resid_pre")          # [n_layers n_pos]
    heads = activation_patching(model, task, "z")                 # [n_layers n_heads]
    part = activation_patching(model, task, "resid_pre", PatchingConfig(layers=[0, 5], positions=[2, -1]))

Under torchrun (mechscope.distributed.init_from_env) each rank patches the disjoint share
prompts[rank::world_size] and the per-site sums are all-reduced: every rank returns the whole grid.

Cost model: one forward per site and prompt, from the patched layer onward (skip_lower_layers), so
a full (layer, position) grid costs about n_layers^2 / 2 x n_pos block-passes per prompt. A claim that
reads a few positions or layers passes `layers` / `positions` and pays only for those.
"""

from __future__ import annotations

import dataclasses

import torch

from mechscope import distributed as ddp
from mechscope.errors import InputError
from mechscope.model.names import act_name
from mechscope.patching.partial_forward import PartialForwardConfig, Site, run_patched
from mechscope.patching.results import PatchingResult
from mechscope.tasks.answer import answer_logits_and_cache

RESID_SITES = ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out")
HEAD_SITES = ("z", "q", "k", "v", "pattern", "result")


@dataclasses.dataclass
class PatchingConfig:
    """direction: "denoise" (clean into corrupt run) or "noise" (corrupt into clean run).
    per_position: for head sites, one entry per (layer, head, position) instead of per head.
    skip_lower_layers / max_rows: see partial_forward."""

    direction: str = "denoise"
    per_position: bool = False
    skip_lower_layers: bool = True
    max_rows: int = 512
    layers: list[int] | None = None      # grid rows: these layers only (None: every layer)
    positions: list[int] | None = None   # grid positions (residual / per-position head sites; negative from the end)


def hook_name(site: str, layer: int) -> str:
    """The hook point of a patching site ("resid_pre", "z", ...) at `layer`."""
    if site not in RESID_SITES + HEAD_SITES:
        raise InputError(f"unknown patching site {site!r}: use one of {', '.join(RESID_SITES + HEAD_SITES)}")
    return act_name(site, layer)


def grid_sites(model, site: str, n_pos: int, per_position: bool = False, layers: list[int] | None = None,
               positions: list[int] | None = None) -> tuple[list[Site], tuple[int, ...]]:
    """Sites of a grid (every layer and position unless `layers` / `positions` narrow it), in
    row-major order of the returned shape."""
    rows = grid_layers(model, layers)
    cols = grid_positions(n_pos, positions)
    L, P = len(rows), len(cols)
    if site in RESID_SITES:
        return [Site(hook_name(site, layer), pos=p) for layer in rows for p in cols], (L, P)
    if site in HEAD_SITES:
        heads = model.cfg.n_kv_heads if site in ("k", "v") else model.cfg.n_heads
        if per_position:
            return ([Site(hook_name(site, layer), pos=p, head=h) for layer in rows for h in range(heads)
                     for p in cols], (L, heads, P))
        return [Site(hook_name(site, layer), head=h) for layer in rows for h in range(heads)], (L, heads)
    raise InputError(f"unknown patching site {site!r}: use one of {', '.join(RESID_SITES + HEAD_SITES)}")


def grid_layers(model, layers: list[int] | None) -> list[int]:
    n = model.cfg.n_layers
    if layers is None:
        return list(range(n))
    rows = sorted({int(layer) for layer in layers})
    if not rows or rows[0] < 0 or rows[-1] >= n:
        raise InputError(f"patching layers must lie in 0..{n - 1}, got {layers}")
    return rows


def grid_positions(n_pos: int, positions: list[int] | None) -> list[int]:
    if positions is None:
        return list(range(n_pos))
    if any(not -n_pos <= int(p) < n_pos for p in positions):
        raise InputError(f"patching positions must lie in -{n_pos}..{n_pos - 1}, got {positions}")
    return sorted({int(p) % n_pos for p in positions})


def rank_share(task):
    """This torchrun rank's disjoint share of the task's prompts, task[rank::world_size] (the whole task
    in one process); refused when there are fewer prompts than ranks."""
    if ddp.world_size() > len(task):
        raise InputError(f"{len(task)} prompts cannot be shared by {ddp.world_size()} ranks: use more prompts "
                         "or fewer ranks")
    return task.subset(slice(ddp.rank(), None, ddp.world_size())) if ddp.is_distributed() else task


def runs_for(task, direction: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(base tokens that get patched, source tokens whose activations are patched in)."""
    if direction == "denoise":
        return task.corrupt_tokens, task.clean_tokens
    if direction == "noise":
        return task.clean_tokens, task.corrupt_tokens
    raise InputError(f"direction must be 'denoise' or 'noise', got {direction!r}")


def activation_patching(model, task, site: str = "resid_pre", config: PatchingConfig | None = None,
                        sites: list[Site] | None = None) -> PatchingResult:
    """Patch every site of a grid (or the given `sites`) one at a time; normalised effects.

    Returns a PatchingResult whose `values` has shape [n_layers n_pos] for residual sites,
    [n_layers n_heads] (or [n_layers n_heads n_pos] with per_position) for head sites, or
    [n_sites] for explicit sites.
    """
    config = config or PatchingConfig()
    if sites is None:
        sites, shape = grid_sites(model, site, task.n_pos, config.per_position, config.layers, config.positions)
        axes = _axes(site, config.per_position)
        layer_labels = grid_layers(model, config.layers)
        pos_index = grid_positions(task.n_pos, config.positions)
    else:
        shape, axes = (len(sites),), ("site",)
        layer_labels, pos_index = [], list(range(task.n_pos))
    n_prompts, pos_labels = len(task), _pos_labels(model, task)
    task = rank_share(task)
    base, _ = runs_for(task, config.direction)
    device = model.device
    names = sorted({s.hook for s in sites})
    # the source run is the clean run (denoise) or the corrupt run (noise): cache it while reading its metric
    clean_logits, sources = answer_logits_and_cache(model, task.clean_tokens, task.answer_pos,
                                                    names if config.direction == "denoise" else [])
    corrupt_logits, corrupt_cache = answer_logits_and_cache(model, task.corrupt_tokens, task.answer_pos,
                                                            names if config.direction == "noise" else [])
    clean_logits, corrupt_logits = clean_logits.float(), corrupt_logits.float()
    sources = sources or corrupt_cache

    def score(logits, prompt_index):
        return task.score(logits, prompt_index, reference_logits=clean_logits)

    per_site, base_scores = run_patched(
        model, base.to(device), sources, sites, score, task.answer_pos,
        PartialForwardConfig(config.skip_lower_layers, config.max_rows))
    sums = torch.cat([per_site.sum(1).float(), task.score(clean_logits, reference_logits=clean_logits).sum()[None],
                      task.score(corrupt_logits, reference_logits=clean_logits).sum()[None]])
    sums = ddp.all_reduce_sum(sums) / n_prompts          # means over every rank's prompts
    patched, clean, corrupt = sums[:-2], sums[-2].item(), sums[-1].item()
    gap = clean - corrupt
    if config.direction == "denoise":
        values = (patched - corrupt) / gap
    else:
        values = (clean - patched) / gap
    return PatchingResult(
        task=task.name, site=site, direction=config.direction, metric=task.metric, axes=axes,
        values=values.reshape(shape), patched_metric=patched.reshape(shape), clean_metric=clean,
        corrupt_metric=corrupt, n_prompts=n_prompts, pos_labels=[pos_labels[p] for p in pos_index],
        sites=[dataclasses.asdict(s) for s in sites] if axes == ("site",) else [], layers=layer_labels)


def _axes(site: str, per_position: bool) -> tuple[str, ...]:
    if site in RESID_SITES:
        return ("layer", "pos")
    return ("layer", "head", "pos") if per_position else ("layer", "head")


def _pos_labels(model, task) -> list[str]:
    """Labels for the position axis: the first clean prompt's tokens (with index)."""
    try:
        toks = model.to_str_tokens(task.clean_tokens[0])
    except Exception:  # a model without a usable tokenizer: label positions by token id
        toks = [str(t) for t in task.clean_tokens[0].tolist()]
    return [f"{i}:{t}" for i, t in enumerate(toks)]
