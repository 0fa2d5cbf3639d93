"""Activation patching grids: (layer, position) for residual-stream sites, (layer, head) for heads.

Denoising (default, as TransformerLens' ``patching`` module): run the corrupt prompt, patch in
one activation from the clean run, and see how much of the clean behaviour comes back. Noising:
run the clean prompt, patch in the corrupt activation, and see how much breaks. Either way the
grid holds the fraction of the clean-vs-corrupt metric gap that the site carries:

    denoise: (patched - corrupt) / (clean - corrupt)      noise: (clean - patched) / (clean - corrupt)

Usage::

    grid = activation_patching(model, task, "resid_pre")          # [n_layers n_pos]
    heads = activation_patching(model, task, "z")                 # [n_layers n_heads]
"""

from __future__ import annotations

import dataclasses

import torch

from mechscope.errors import InputError
from mechscope.model.names import act_name
from mechscope.patching.partial_forward import PartialForwardConfig, Site, run_patched
from mechscope.patching.results import PatchingResult

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


def hook_name(site: str, layer: int) -> str:
    """The hook point of a patching site ("resid_pre", "z", ...) at `layer`."""
    if site not in RESID_SITES + HEAD_SITES:
        raise InputError(f"unknown patching site {site!r}: use one of {', '.join(RESID_SITES + HEAD_SITES)}")
    return act_name(site, layer)


def grid_sites(model, site: str, n_pos: int, per_position: bool = False) -> tuple[list[Site], tuple[int, ...]]:
    """Sites of a full grid, in row-major order of the returned shape."""
    L = model.cfg.n_layers
    if site in RESID_SITES:
        return [Site(hook_name(site, layer), pos=p) for layer in range(L) for p in range(n_pos)], (L, n_pos)
    if site in HEAD_SITES:
        heads = model.cfg.n_kv_heads if site in ("k", "v") else model.cfg.n_heads
        if per_position:
            return ([Site(hook_name(site, layer), pos=p, head=h) for layer in range(L) for h in range(heads)
                     for p in range(n_pos)], (L, heads, n_pos))
        return [Site(hook_name(site, layer), head=h) for layer in range(L) for h in range(heads)], (L, heads)
    raise InputError(f"unknown patching site {site!r}: use one of {', '.join(RESID_SITES + HEAD_SITES)}")


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
        sites, shape = grid_sites(model, site, task.n_pos, config.per_position)
        axes = _axes(site, config.per_position)
    else:
        shape, axes = (len(sites),), ("site",)
    base, source = runs_for(task, config.direction)
    device = model.device
    names = sorted({s.hook for s in sites})
    with torch.no_grad():
        clean_logits = model(task.clean_tokens.to(device))[:, task.answer_pos].float()
        corrupt_logits = model(task.corrupt_tokens.to(device))[:, task.answer_pos].float()
        _, cache = model.run_with_cache(source.to(device), names=names)
    sources = {name: cache[name] for name in names}

    def score(logits, prompt_index):
        return task.score(logits, prompt_index, reference_logits=clean_logits)

    per_site, base_scores = run_patched(
        model, base.to(device), sources, sites, score, task.answer_pos,
        PartialForwardConfig(config.skip_lower_layers, config.max_rows))
    clean = task.score(clean_logits, reference_logits=clean_logits).mean().item()
    corrupt = task.score(corrupt_logits, reference_logits=clean_logits).mean().item()
    patched = per_site.mean(1)
    gap = clean - corrupt
    if config.direction == "denoise":
        values = (patched - corrupt) / gap
    else:
        values = (clean - patched) / gap
    return PatchingResult(
        task=task.name, site=site, direction=config.direction, metric=task.metric, axes=axes,
        values=values.reshape(shape), patched_metric=patched.reshape(shape), clean_metric=clean,
        corrupt_metric=corrupt, n_prompts=len(task), pos_labels=_pos_labels(model, task),
        sites=[dataclasses.asdict(s) for s in sites] if axes == ("site",) else [])


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
