"""Attribution patching (Nanda 2023; Syed et al. 2023): a first-order estimate of every patch.

For a site with activation a, patching the source value into the base run changes the metric by
about (a_source - a_base) · dmetric/da, the gradient taken on the base run. One forward on the
source run (no graph) and one forward + backward on the base run give the estimate for every
site at once. The backward only computes gradients with respect to activations (never weights),
and both forwards stop at the final norm and unembed just the answer position.

Values are normalised like exact patching (activation.py), so the two grids compare directly;
`compare_with_exact` runs both on the same grid and reports their agreement.

Under torchrun (mechscope.distributed.init_from_env) each rank runs the disjoint share
task[rank::world_size] of the prompts; the sums of the estimates and of the clean and corrupt
metrics are all-reduced, so every rank returns the 1-process result. On a model sharded with
`mechscope.model.sharding.shard_across_ranks` the same code runs with 1/world of the weights per rank.

Usage::

    attr = attribution_patching(model, task, sites=("resid_pre", "z"))
    attr.values["z"]          # [n_layers n_heads]
"""

from __future__ import annotations

import torch

from mechscope import distributed as ddp
from mechscope.errors import InputError
from mechscope.model.axes import axes_of
from mechscope.patching.activation import (
    HEAD_SITES,
    RESID_SITES,
    PatchingConfig,
    _pos_labels,
    activation_patching,
    hook_name,
    rank_share,
)
from mechscope.patching.activation import runs_for as _runs_for
from mechscope.patching.results import AttributionResult, agreement
from mechscope.tasks.answer import forward_to_answer


def attribution_patching(model, task, sites: tuple[str, ...] = ("resid_pre", "attn_out", "mlp_out", "z"),
                         direction: str = "denoise", per_position_heads: bool = False) -> AttributionResult:
    """Estimates for every (layer, position) of residual sites and every (layer, head) of head sites.

    sites: short names ("resid_pre", "attn_out", "mlp_out", "resid_mid", "resid_post", "z", "q", "k",
    "v", "result") for a grid over layers, or full hook names (e.g. "ln_final.hook_normalized")
    for one hook estimated per position.

    Cost: one forward on the source run, one forward and one activation-only backward on the base
    run (the base forward also gives the base metric).
    """
    for s in sites:
        if "hook_" in s:
            model.resolve_names([s])       # a full hook name: estimated per position
            continue
        if s not in RESID_SITES + HEAD_SITES or s == "pattern":
            raise InputError(f"attribution patching supports {', '.join(RESID_SITES + ('z', 'q', 'k', 'v', 'result'))}; "
                             f"got {s!r}")
    n_prompts, pos_labels = len(task), _pos_labels(model, task)
    task = rank_share(task)
    base, source = _runs_for(task, direction)
    device = model.device
    L = model.cfg.n_layers
    layer_names = {s: [s] if "hook_" in s else [hook_name(s, layer) for layer in range(L)] for s in sites}
    names = [n for s in sites for n in layer_names[s]]
    source_logits, source_acts = forward_to_answer(model, source.to(device), names, task.answer_pos, grad=False)
    base_logits, base_acts = forward_to_answer(model, base.to(device), names, task.answer_pos, grad=True)
    clean_logits = (source_logits if direction == "denoise" else base_logits).detach()
    base_scores = task.score(base_logits, reference_logits=clean_logits)
    wrt = [base_acts[n] for n in names]
    grads = torch.autograd.grad(base_scores.sum(), wrt, allow_unused=True)
    with torch.no_grad():
        source_scores = task.score(source_logits, reference_logits=clean_logits)
        clean, corrupt = ((source_scores, base_scores) if direction == "denoise" else (base_scores, source_scores))
        grad_of = dict(zip(names, grads, strict=True))
        sums = {s: torch.stack([_estimate_sum(n, source_acts[n], base_acts[n], grad_of[n],
                                              None if "hook_" in s else per_position_heads)
                                for n in layer_names[s]])
                for s in sites}
        # one all-reduce of every sum (estimates, clean and corrupt metrics); means over every rank's prompts
        flat = torch.cat([t.reshape(-1) for t in sums.values()]
                         + [clean.double().sum()[None], corrupt.double().sum()[None]])
        flat = (ddp.all_reduce_sum(flat).cpu() / n_prompts).float()
        clean, corrupt = flat[-2].item(), flat[-1].item()
        gap = clean - corrupt
        values, offset = {}, 0
        for s, t in sums.items():
            stacked = flat[offset: offset + t.numel()].view(t.shape)
            offset += t.numel()
            if "hook_" in s:
                stacked = stacked[0]
            # patched - base ≈ estimate; in gap units with the sign convention of exact patching
            values[s] = stacked / gap if direction == "denoise" else -stacked / gap
    return AttributionResult(task=task.name, direction=direction, metric=task.metric, values=values,
                             clean_metric=clean, corrupt_metric=corrupt, n_prompts=n_prompts, n_forward=2,
                             n_backward=1, pos_labels=pos_labels)


def _estimate_sum(name: str, source: torch.Tensor, base: torch.Tensor, grad: torch.Tensor | None,
                  per_position_heads: bool) -> torch.Tensor:
    """(source - base) · grad at hook `name` (each [n pos ...]), summed over prompts and the hidden
    axis: [pos] for a residual hook; for a head hook [head], [head pos] with per_position_heads, or
    [pos] (summed over heads) with per_position_heads=None (a full hook name given as a site)."""
    delta = source.detach() - base.detach()
    if grad is None:
        grad = torch.zeros_like(delta)
    est = (delta * grad).double().sum(-1).sum(0)             # [pos] or [pos head]; float64 sums: the same
                                                             # up to rounding however the prompts are split
    head_axis = axes_of(name).head
    if est.dim() == 2 and head_axis is not None:
        est = est.movedim(head_axis - 1, 0)                  # [head pos]
        if per_position_heads is None:
            est = est.sum(0)
        elif not per_position_heads:
            est = est.sum(1)
    return est


def compare_with_exact(model, task, sites: tuple[str, ...] = ("resid_pre", "z"), direction: str = "denoise",
                       k: int = 10) -> AttributionResult:
    """Attribution estimates plus exact patching on the same grids; fills `.agreement` per site."""
    attr = attribution_patching(model, task, sites, direction)
    for s in sites:
        exact = activation_patching(model, task, s, PatchingConfig(direction=direction))
        attr.agreement[s] = agreement(s, attr.values[s], exact.values, k=k)
    return attr
