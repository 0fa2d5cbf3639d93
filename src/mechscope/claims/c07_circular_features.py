"""C07: some features are multi-dimensional: days of the week (and months) on a circle (Engels et al. 2024).

Experiment: prompts "N days after X is" for every start X and count N (the organism's own templates when the
model is an organism). Two token sites, as Engels et al.'s a and c: the X word labelled X, and the last
position (where the model computes the answer) labelled X + N. At the embedding and after every block: PCA to
5 dimensions and a least-squares circle probe onto (cos 2π·label/7, sin 2π·label/7). Read, at the site with
the higher held-out R²: the leave-one-day-out R² (each day predicted by a PCA and probe that never saw it; any
7 points fit a circle in sample, only a circle predicts an unseen day), whether the held-out days lie in week
order around the circle, and the intervention: move the point inside the circle plane to every other day and
count how often the model then gives the implied day (X' + N, or the new answer), top-1 among the 7 days, at
the hook where it works best. Months are measured the same way and reported beside (full budget only).

Null: the re-initialised twin (same prompts, same selection of site and hooks); its embeddings are random
points, so its held-out R² and intervention accuracy show what the method gives on a network that learned
nothing, selection included.

Cost: per site one cached forward pass of 35-42 prompts and 7 × P intervened passes (12 × for months), P =
the residual points visited (the embedding and every block output, or budget.max_layers of them evenly spread
on deeper models: budget.layers), so the passes stay linear in depth; the 7 passes at a point share the blocks
below it (run once, then grown into 7 copies: geometry.circle.moved_answer_logits), about half the block work
of 7 full passes, and only the 7 (12) cycle words are unembedded (at the 12-layer 135M shape: 36 CPU s,
43 when every pass unembedded the whole 50k vocabulary); Engels' irreducibility indices on ≤ 96 points:
~5 s per model for days on a 4-layer organism.
"""

from __future__ import annotations

import numpy as np

from mechscope.claims.base import Budget, Measurement
from mechscope.errors import NotApplicableError
from mechscope.geometry.circle import TOKENS, circle_features, residual_hooks

ID = "C07"
NULL = "twin"
READS = ("heldout_r2", "order_exact", "intervention_accuracy")
NULL_READS = ("heldout_r2", "intervention_accuracy")

MIN_HELDOUT, HELDOUT_MARGIN, MIN_INTERVENTION, INTERVENTION_MARGIN = 0.6, 0.3, 0.5, 0.3
RULE = (f"days of the week, at the better of the two sites (the day word, the answer position): supported if the "
        f"leave-one-day-out circle R² is ≥ {MIN_HELDOUT} and ≥ {HELDOUT_MARGIN} above the twin's, the held-out days "
        f"lie in week order around the circle, and moving the point on the circle makes the model give the implied "
        f"day with accuracy ≥ {MIN_INTERVENTION} and ≥ {INTERVENTION_MARGIN} "
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


def _site_metrics(r) -> dict:
    i, j = r.best, int(np.nanargmax(r.intervention_accuracy))
    return {"heldout_r2": r.heldout_r2[i], "r2": r.r2[i], "shuffled_r2": r.control_r2[i],
            "order_exact": float(r.order_exact), "order": r.order, "circle_hook": r.best_hook,
            "intervention_accuracy": r.intervention_accuracy[j], "intervention_hook": r.hooks[j],
            "mixture_index": r.mixture_index, "separability_index_bits": r.separability_index,
            "per_hook": {h: {"r2": r.r2[k], "heldout_r2": r.heldout_r2[k],
                             "intervention_accuracy": r.intervention_accuracy[k]} for k, h in enumerate(r.hooks)}}


def measure(model, budget: Budget) -> Measurement:
    steps = 2000 if budget.name == "quick" else 10_000
    every = residual_hooks(model)
    hooks = [every[i] for i in budget.layers(len(every))]
    sites = {token: circle_features(model, "days", token=token, hooks=hooks, seed=budget.seed, mixture_steps=steps)
             for token in TOKENS}
    per_site = {token: _site_metrics(r) for token, r in sites.items()}
    token = max(TOKENS, key=lambda t: per_site[t]["heldout_r2"])
    days = sites[token]
    metrics = {**{k: v for k, v in per_site[token].items() if k != "per_hook"}, "site": token,
               "task_accuracy": days.task_accuracy, "sites": per_site}
    figures = [r.figure() for r in sites.values()]
    if budget.name != "quick":
        try:
            months = {t: _site_metrics(circle_features(model, "months", token=t, hooks=hooks, seed=budget.seed,
                                                       mixture_steps=steps)) for t in TOKENS}
            metrics["months"] = months
        except NotApplicableError as err:
            metrics["months"] = {"not_applicable": str(err)}
    m = metrics
    where = "the day word" if token == "start" else "the last position (where the answer is computed)"
    return Measurement(
        metrics=metrics, key_metric="heldout_r2",
        evidence=(f"At {where}, {m['circle_hook']}, the activations fit a circle with R² {m['r2']:.2f} "
                  f"(leave-one-day-out {m['heldout_r2']:.2f}, shuffled days {m['shuffled_r2']:.2f}); held out, the "
                  f"days are {'in' if m['order_exact'] else 'not in'} week order around it. Moving the point on "
                  f"the circle at {m['intervention_hook']} makes the model give the implied day "
                  f"{100 * m['intervention_accuracy']:.0f}% of the time (unedited task accuracy "
                  f"{100 * days.task_accuracy:.0f}%)."),
        method=(f"{days.n_prompts} prompts 'N days after X is' (every X and N of one token length). Two sites, as "
                "Engels et al.'s a and c: the X word labelled X, and the last position labelled X + N. At the "
                "embedding and each block output: PCA to 5 dims, least-squares probe onto (cos, sin) of 2π·label/7, "
                "leave-one-day-out R² (PCA and probe refitted without the day), shuffled-label control; the site "
                "with the higher held-out R² is read. Intervention: x' = x - PQQᵀPᵀ(x-μ) + PQ(tR⁻¹)ᵀ at each hook "
                "(top-1 among the 7 days on the implied answer); Engels' ε-mixture (ε = 0.1) and separability "
                "indices of the points in the circle plane."),
        figures=figures)
