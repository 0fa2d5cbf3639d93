"""C12: information moves between positions through attention.

Experiment: denoising activation patching of resid_pre over every (layer, position) on a task
whose clean and corrupt prompts differ at one early position: IOI (corrupt: S2 replaced by IO,
so the answer flips) where the model has names, otherwise the induction-copy task (the copied
token changed in the first copy). In a causal decoder any dependence on an earlier token must move
through attention somewhere, so "it moves" cannot fail; the claim is read in a form that can: the
information moves *in identifiable layers*. The final position's share of the effect rises from
<= 20% to >= 80% within a band of at most max(1, ceil(L/3)) blocks, and before that band the changed
positions hold >= 80% of it; not when the effect only reaches the final position in the last block,
or drifts there gradually over most of the depth.

Null: the re-initialised twin (it does not do the task: its clean-corrupt gap is ~0).
Cost (per model; the twin doubles it): denoising patches of resid_pre at only the positions the rule
reads (the changed ones and the final one, not the whole prompt) and at B = min(n_layers,
budget.max_layers) layers spread over the depth (every layer on models with at most max_layers blocks),
on <= 16 prompts; each patch runs from its layer onward, so the cost is at most B x (changed + 1) x
n_layers block-passes per prompt: linear in layers under quick. With sampled layers, the layers inside
the rise (between the last patched layer at <= 20% and the first at >= 80%) are patched in further rounds
of at most B layers each, until no unpatched layer is left inside it, so the rise width is exact over the
patched layers, not a bound (one round of a few layers when the rise is sharp, as the rule wants it). The
rounds run only when the gap is >= MIN_GAP (and never on the twin, whose gap alone is read): below it the
verdict is inconclusive whatever the rise, and the shares of a ~0 gap are noise that read as a rise over
most of the depth (metrics["rise_refined"] says which). On random-init models the refinement patched
every layer of that noise "rise": 2.2 / 10.1 / 22.4 CPU s at 4 / 12 / 30 layers of the 135M shape, a
fitted exponent of 1.16 in depth.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from mechscope.claims.base import Budget, Measurement
from mechscope.errors import NotApplicableError
from mechscope.patching.activation import PatchingConfig, activation_patching
from mechscope.tasks.induction import induction_task
from mechscope.tasks.ioi import ioi_task

ID = "C12"
NULL = "twin"
READS = ("gap", "arrival_layer", "rise_width", "changed_share_before_rise", "n_blocks")
NULL_READS = ("gap",)

MIN_GAP, LOW, HIGH = 1.0, 0.2, 0.8
RULE = (f"fraction of the clean-corrupt logit-diff gap recovered by patching resid_pre at the final position, by "
        f"layer: supported if the gap is >= {MIN_GAP} and >= {MIN_GAP} above the re-initialised twin's, the final "
        f"position's share rises from <= {LOW:.0%} to >= {HIGH:.0%} within max(1, ceil(n_blocks/3)) blocks (the "
        f"layers that move the information), and before that rise the changed positions hold >= {HIGH:.0%}; not "
        f"supported if the final position never holds {HIGH:.0%} before the last block (the information arrives only "
        "in the last block or stays spread) or the rise takes more than half the blocks; inconclusive otherwise, "
        "and when the gap is small (the model does not do the task well enough to tell)")


def verdict(metrics: dict, null: dict | None) -> str:
    gap, n_blocks = metrics["gap"], metrics["n_blocks"]
    if gap < MIN_GAP or null is None or gap < null["gap"] + MIN_GAP:
        return "inconclusive"
    arrival, width = metrics["arrival_layer"], metrics["rise_width"]
    if arrival < 0 or width > n_blocks / 2:
        return "not supported"
    if width <= max(1, math.ceil(n_blocks / 3)) and metrics["changed_share_before_rise"] >= HIGH:
        return "supported"
    return "inconclusive"


def movement(at_end: list[float], at_changed: list[float], layers: list[int] | None = None
             ) -> tuple[int, int, float]:
    """(arrival layer, rise width, min changed share before the rise) from resid_pre shares by layer.

    layers: the layer of each entry (default 0, 1, ...; a sample of the layers gives a coarser width).
    arrival: first layer whose final-position share is >= HIGH (-1 if none); the rise starts after
    the last layer before it with share <= LOW; width = arrival - that layer (-1 if no arrival).
    """
    layers = list(range(len(at_end))) if layers is None else layers
    first = next((i for i, v in enumerate(at_end) if v >= HIGH), -1)
    if first < 0:
        return -1, -1, float(min(at_changed))
    start = max((i for i in range(first) if at_end[i] <= LOW), default=0)
    return layers[first], layers[first] - layers[start], float(min(at_changed[: start + 1]))


def refinement(layers: list[int], arrival: int, width: int, per_round: int) -> list[int]:
    """The next layers to patch inside the rise (arrival - width, arrival) that `layers` leave out: all of
    them when they are at most per_round, else per_round evenly spaced ones; [] when the rise is exact.

    Patching every unpatched layer of a slow rise at once costs ~n_layers patches of up to n_layers blocks
    each (quadratic in depth); rounds of at most per_round layers shrink the rise ~per_round-fold each, so
    a rise of w layers takes ~log(w) / log(per_round) rounds and the sweep stays linear in depth."""
    if width <= 1:
        return []
    missing = [layer for layer in range(arrival - width + 1, arrival) if layer not in layers]
    if len(missing) <= per_round:
        return missing
    step = (len(missing) - 1) / max(per_round - 1, 1)
    return sorted({missing[round(i * step)] for i in range(per_round)})


def refine_rise(shares: Callable[[list[int]], tuple[list[float], list[float]]], layers: list[int],
                at_changed: list[float], at_end: list[float], per_round: int
                ) -> tuple[list[int], list[float], list[float]]:
    """Patch the layers inside the rise that `layers` leave out, in rounds (`refinement`), until none is
    left; shares(layers) -> (changed-position shares, final-position shares) at those layers. Returns
    (layers, at_changed, at_end) merged and sorted by layer."""
    while inside := refinement(layers, *movement(at_end, at_changed, layers)[:2], per_round):
        more_changed, more_end = shares(inside)
        merged = sorted(zip(layers + inside, at_changed + more_changed, at_end + more_end, strict=True))
        layers, at_changed, at_end = (list(column) for column in zip(*merged, strict=True))
    return layers, at_changed, at_end


def pick_task(model, budget: Budget):
    try:
        return ioi_task(model, n_prompts=min(budget.n_prompts, 16), seed=budget.seed, corrupt="flip_s2",
                        template_ids=[0])
    except NotApplicableError:
        return induction_task(model, n_prompts=min(budget.n_prompts, 16), half_len=8, seed=budget.seed)


def measure(model, budget: Budget) -> Measurement:
    task = pick_task(model, budget)
    changed_at = task.differing_positions().nonzero().flatten().tolist()
    end = task.resolved_answer_pos
    positions = sorted(set(changed_at) | {end})            # only what the rule reads
    changed = [positions.index(p) for p in changed_at]

    def sweep(layers: list[int]):
        grid = activation_patching(model, task, "resid_pre", PatchingConfig(layers=layers, positions=positions))
        values = grid.values                                 # [len(layers) len(positions)]
        return grid, values[:, changed].sum(1).tolist(), values[:, positions.index(end)].tolist()

    layers = budget.layers(model.cfg.n_layers)
    grid, at_changed, at_end = sweep(layers)
    gap = grid.clean_metric - grid.corrupt_metric
    # below MIN_GAP the verdict does not read the rise, and shares of a ~0 gap are noise; the twin's run
    # reads only the gap
    refined = gap >= MIN_GAP and budget.reads_any("arrival_layer", "rise_width", "changed_share_before_rise")
    if refined:
        layers, at_changed, at_end = refine_rise(lambda more: sweep(more)[1:], layers, at_changed, at_end,
                                                 per_round=len(layers))
    arrival, width, holds = movement(at_end, at_changed, layers)
    metrics = {
        "task": task.name, "gap": gap, "clean_metric": grid.clean_metric, "corrupt_metric": grid.corrupt_metric,
        "n_blocks": model.cfg.n_layers, "arrival_layer": arrival, "rise_width": width,
        "changed_share_before_rise": holds, "rise_refined": refined,
        "effect_at_changed_positions_by_layer": [round(v, 4) for v in at_changed],
        "effect_at_end_by_layer": [round(v, 4) for v in at_end], "patched_layers": layers,
        "changed_positions": changed_at, "n_prompts": len(task),
    }
    where = (f"arrives at the final position (>= {HIGH:.0%}) at layer {arrival}, a rise over {width} block(s)"
             if arrival >= 0 else f"never holds {HIGH:.0%} of it at the final position before the last block")
    evidence = (
        f"On the {task.name} task ({len(task)} prompts, gap {gap:.2f} in logit diff) the effect sits at the changed "
        f"position(s) {metrics['changed_positions']} ({at_changed[0]:.0%} at layer 0, at least {holds:.0%} before the "
        f"rise) and {where}. Final-position share by layer "
        f"({', '.join(map(str, layers))}): {', '.join(f'{v:.2f}' for v in at_end)}."
        + ("" if refined or layers == list(range(model.cfg.n_layers)) else
           f" The gap is below {MIN_GAP:g}, so the rise was not refined between the sampled layers." if gap < MIN_GAP
           else " This run reads only the gap, so the rise was not refined between the sampled layers."))
    return Measurement(
        metrics=metrics, key_metric="arrival_layer", evidence=evidence, figures=[grid.figure()],
        method=(f"Denoising activation patching of resid_pre at layers {', '.join(map(str, layers))} and at the "
                "changed and final positions (the ones the rule reads), batched and run from the patched layer onward; IOI with S2 -> IO corruption (template 0) when the model has single-token "
                "names, else the induction-copy task; values are the fraction of the clean-corrupt gap recovered."))
