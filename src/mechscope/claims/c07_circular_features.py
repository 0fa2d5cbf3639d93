"""C07: some features are multi-dimensional: days of the week (and months) on a circle (Engels et al. 2024).

Experiment: prompts "N days after X is" for every start X and count N (the organism's own templates when the
model is an organism). At the embedding and after every block, the activation of the X token: PCA to 5
dimensions and a least-squares circle probe onto (cos 2πX/7, sin 2πX/7). Read: the leave-one-day-out R²
(each day predicted by a probe that never saw it; any 7 points fit a circle in sample, only a circle predicts
an unseen day), the angular order of the days against the week, and the intervention: move X inside the
circle plane to every other day X' and count how often the model then answers X' + N (top-1 among the 7
days), at the hook where it works best. Months are measured the same way and reported beside (full budget only).

Null: the re-initialised twin (same prompts); its embeddings are random points, so the held-out R² and the
intervention accuracy show what the method gives on a network that learned nothing.

Cost: one cached forward pass of 35-42 prompts per cycle, 7 × (n_layers + 1) intervened passes (12 × for
months), Engels' irreducibility indices on ≤ 96 points: ~3 s per model for days on a 4-layer organism.
"""

from __future__ import annotations

from mechscope.claims.base import Budget, Measurement
from mechscope.errors import NotApplicableError
from mechscope.geometry.circle import circle_features

ID = "C07"
NULL = "twin"
READS = ("heldout_r2", "order_exact", "intervention_accuracy")

MIN_HELDOUT, HELDOUT_MARGIN, MIN_INTERVENTION, INTERVENTION_MARGIN = 0.6, 0.3, 0.5, 0.3
RULE = (f"days of the week: supported if the leave-one-day-out circle R² is ≥ {MIN_HELDOUT} and ≥ {HELDOUT_MARGIN} "
        f"above the twin's, the days lie in week order around the circle, and moving a day on the circle makes "
        f"the model answer the moved day's sum with accuracy ≥ {MIN_INTERVENTION} and ≥ {INTERVENTION_MARGIN} "
        "above the twin's; not supported if the held-out R² is < 0.3 or within 0.1 of the twin's, or the "
        "intervention accuracy is within 0.1 of the twin's; otherwise inconclusive")


def verdict(metrics: dict, null: dict | None) -> str:
    r2, acc = metrics["heldout_r2"], metrics["intervention_accuracy"]
    if null is None:
        return "inconclusive"
    if r2 < 0.3 or r2 - null["heldout_r2"] < 0.1 or acc - null["intervention_accuracy"] < 0.1:
        return "not supported"
    if (r2 >= MIN_HELDOUT and r2 - null["heldout_r2"] >= HELDOUT_MARGIN and metrics["order_exact"] >= 1
            and acc >= MIN_INTERVENTION and acc - null["intervention_accuracy"] >= INTERVENTION_MARGIN):
        return "supported"
    return "inconclusive"


def measure(model, budget: Budget) -> Measurement:
    steps = 2000 if budget.name == "quick" else 10_000
    days = circle_features(model, "days", seed=budget.seed, mixture_steps=steps)
    i = days.best
    best_int = max(range(len(days.hooks)), key=lambda j: days.intervention_accuracy[j])
    metrics = {
        "heldout_r2": days.heldout_r2[i], "r2": days.r2[i], "shuffled_r2": days.control_r2[i],
        "order_exact": float(days.order_exact), "order": days.order, "circle_hook": days.best_hook,
        "intervention_accuracy": days.intervention_accuracy[best_int],
        "intervention_hook": days.hooks[best_int], "task_accuracy": days.task_accuracy,
        "mixture_index": days.mixture_index, "separability_index_bits": days.separability_index,
        "per_hook": {h: {"r2": days.r2[j], "heldout_r2": days.heldout_r2[j],
                         "intervention_accuracy": days.intervention_accuracy[j]} for j, h in enumerate(days.hooks)},
    }
    figures = [days.figure()]
    if budget.name == "quick":
        return _measurement(days, metrics, best_int, figures)
    try:
        months = circle_features(model, "months", seed=budget.seed, mixture_steps=steps)
        m = months.best
        metrics["months"] = {"heldout_r2": months.heldout_r2[m], "r2": months.r2[m], "order_exact": months.order_exact,
                             "intervention_accuracy": max(months.intervention_accuracy),
                             "circle_hook": months.best_hook, "task_accuracy": months.task_accuracy}
        figures.append(months.figure())
    except NotApplicableError as err:
        metrics["months"] = {"not_applicable": str(err)}
    return _measurement(days, metrics, best_int, figures)


def _measurement(days, metrics: dict, best_int: int, figures: list) -> Measurement:
    i = days.best
    return Measurement(
        metrics=metrics, key_metric="heldout_r2",
        evidence=(f"At {days.best_hook} the day token's activations fit a circle with R² {days.r2[i]:.2f} "
                  f"(leave-one-day-out {days.heldout_r2[i]:.2f}, shuffled days {days.control_r2[i]:.2f}); the days "
                  f"are {'in' if days.order_exact else 'not in'} week order around it. Moving the day on the circle "
                  f"at {days.hooks[best_int]} makes the model answer the moved day's sum "
                  f"{100 * metrics['intervention_accuracy']:.0f}% of the time (unedited task accuracy "
                  f"{100 * days.task_accuracy:.0f}%)."),
        method=(f"{days.n_prompts} prompts 'N days after X is' (every X, N = 1..6 of one token length); activation "
                "of X at the embedding and each block output; PCA to 5 dims, least-squares probe onto (cos, sin) of "
                "2πX/7, leave-one-day-out R², shuffled-label control; circle-plane edit x' = x - PQQᵀPᵀ(x-μ) + "
                "PQ(tR⁻¹)ᵀ at each hook, top-1 among the 7 days; Engels' ε-mixture (ε = 0.1) and separability "
                "indices of the points in the circle plane."),
        figures=figures)
