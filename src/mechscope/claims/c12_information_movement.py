"""C12: information moves between positions through attention.

Experiment: denoising activation patching of resid_pre over every (layer, position) on a task
whose clean and corrupt prompts differ at one early position: IOI (corrupt: S2 replaced by IO,
so the answer flips) where the model has names, otherwise the induction-copy task (the copied
token changed in the first copy). At layer 0 only the changed position can carry the effect; the
final position must hold it by the last layer. Where it moves between the two tells which layers
move the information.
"""

from __future__ import annotations

from mechscope.claims.base import Budget, ClaimResult
from mechscope.errors import NotApplicableError
from mechscope.patching.activation import activation_patching
from mechscope.tasks.induction import induction_task
from mechscope.tasks.ioi import ioi_task

ID = "C12"
SLUG = "information-movement"
TITLE = "Information moves between positions through attention"
REFERENCE = "IOI / factual recall patching figures"

MIN_GAP, MOVED = 1.0, 0.5
RULE = (f"supported if the task's clean-corrupt logit-diff gap is >= {MIN_GAP} and patching the last position "
        f"alone at the last layer's resid_pre recovers >= {MOVED:.0%} of it (the information reached the final "
        f"position), while at layer 0 the changed positions carry it; not supported if the gap is >= {MIN_GAP} "
        "but the final position never carries the majority of the effect; inconclusive if the gap is smaller "
        "(the model does not do the task well enough to tell)")


def verdict(gap: float, end_last_layer: float) -> str:
    if gap < MIN_GAP:
        return "inconclusive"
    return "supported" if end_last_layer >= MOVED else "not supported"


def pick_task(model, budget: Budget):
    try:
        return ioi_task(model, n_prompts=min(budget.n_prompts, 16), seed=budget.seed, corrupt="flip_s2",
                        template_ids=[0])
    except NotApplicableError:
        return induction_task(model, n_prompts=min(budget.n_prompts, 16), half_len=8, seed=budget.seed)


def run(model, budget: Budget) -> ClaimResult:
    task = pick_task(model, budget)
    grid = activation_patching(model, task, "resid_pre")
    values = grid.values
    changed = task.differing_positions()
    end = task.resolved_answer_pos
    gap = grid.clean_metric - grid.corrupt_metric
    at_changed = values[:, changed].sum(1)                    # [n_layers]
    at_end = values[:, end]
    moved_layer = next((layer for layer in range(values.shape[0]) if at_end[layer] >= MOVED), None)
    v = verdict(gap, float(at_end[-1]))
    metrics = {
        "task": task.name, "gap": gap, "clean_metric": grid.clean_metric, "corrupt_metric": grid.corrupt_metric,
        "effect_at_changed_positions_by_layer": at_changed.tolist(), "effect_at_end_by_layer": at_end.tolist(),
        "end_effect_last_layer": float(at_end[-1]), "first_layer_end_carries_majority": moved_layer,
        "changed_positions": changed.nonzero().flatten().tolist(), "n_prompts": len(task),
    }
    where = f"layer {moved_layer}" if moved_layer is not None else "no layer"
    evidence = (
        f"On the {task.name} task ({len(task)} prompts, gap {gap:.2f} in logit diff) the effect sits at the changed "
        f"position(s) {metrics['changed_positions']} at layer 0 ({float(at_changed[0]):.0%}) and reaches the final "
        f"position by {where}; at the last layer the final position alone recovers {float(at_end[-1]):.0%}.")
    return ClaimResult(
        id=ID, slug=SLUG, title=TITLE, verdict=v, metrics=metrics, key_metric="end_effect_last_layer",
        evidence=evidence, rule=RULE, reference=REFERENCE, figures=[grid.figure()],
        method=("Denoising activation patching of resid_pre at every (layer, position), batched and run from the "
                "patched layer onward; IOI with S2 -> IO corruption (template 0) when the model has single-token "
                "names, else the induction-copy task; values are the fraction of the clean-corrupt gap recovered."))
