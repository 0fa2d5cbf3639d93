"""C13: a few components do not explain a behaviour; faithfulness rises slowly as components are added.

Experiment, on each of the model's tasks (IOI, docstring, facts, days; a task whose vocabulary the
model lacks is skipped): score every edge of the graph (input, heads, MLPs -> attention layers,
MLPs, logits) with EAP-IG (5 steps, patching with the task's corrupt prompts), then measure the
normalised faithfulness (m(C) - m(empty)) / (m(full) - m(empty)) of the top-n edges over a grid of
sizes, under patching and under mean ablation. A task counts when the model shows the behaviour:
m(full) - m(empty) >= MIN_GAP logits. Read: the fraction of edges needed for 80% faithfulness
(median over counted tasks, patching) and the area under the curve (MIB's CPR).

Null: the re-initialised twin, measured the same way. Its (tiny) logit differences are spread
thinly over the graph (on tiny-gpt2's twin 30-60% of the edges reach 80%), so "a few edges
suffice" is only read as learned crispness when the model needs clearly fewer edges than its twin;
on a small graph a few edges are a large share, and the twin guards against reading the graph's
coarseness, or the direct input -> logits path alone, as a circuit.

Cost per task, on half the budget's prompts: 1 corrupt + 5 forward/backward passes (EAP-IG), about 20
circuit evaluations stacked several per forward for each of the two curves (the mean-ablation curve ranks
edges by the same patching scores; reported, not read, so the quick budget drops it on models deeper than
budget.max_layers, and the twin's run drops it always); twice (model and twin). The model's run first
reads each task's clean - corrupt gap (its clean and corrupt run); when no task reaches MIN_GAP the rule
is inconclusive whatever the curves, and none is drawn (edges_for_80 is then Measurement.unmeasured).
Measured on a random GPT-2-small shape (12 x 12 heads, 16 IOI prompts, 1 thread): 62 CPU s per task with
both curves, most of it the curves' forwards.
"""

from __future__ import annotations

import math
import statistics

import torch

from mechscope.circuits import CircuitSetup, attribute, faithfulness_curve
from mechscope.circuits.engine import mean_metric
from mechscope.claims.base import Budget, Measurement
from mechscope.errors import NotApplicableError
from mechscope.progress import progress
from mechscope.tasks import get_task

ID = "C13"
NULL = "twin"
READS = ("edges_for_80", "n_tasks_with_behaviour")
NULL_READS = ("edges_for_80",)

TASKS = ("ioi", "docstring", "facts", "days")
MIN_GAP = 0.5            # logits of clean-minus-ablated metric for a task to count
SPREAD, CRISP, MARGIN = 0.25, 0.10, 0.05
RULE = (f"EAP-IG edge circuits (top-n) on the model's tasks with a behaviour (clean - corrupt metric ≥ {MIN_GAP}): "
        f"supported if the median fraction of edges needed for 80% normalised faithfulness (patching) is ≥ "
        f"{SPREAD:.0%}; not supported if it is ≤ {CRISP:.0%} and at least {MARGIN:.0%} of the edges below the "
        "re-initialised twin's (a few edges explain the behaviour, and not merely because the graph is small); "
        "otherwise inconclusive; inconclusive when no task shows the behaviour")


def verdict(metrics: dict, null: dict | None) -> str:
    if metrics["n_tasks_with_behaviour"] < 1:
        return "inconclusive"
    needed = metrics["edges_for_80"]
    if needed >= SPREAD:
        return "supported"
    if null is not None and needed <= CRISP and null["edges_for_80"] - needed >= MARGIN:
        return "not supported"
    return "inconclusive"


def _task_metrics(model, task, with_mean_ablation: bool = True) -> tuple[dict, list]:
    setup = CircuitSetup.from_task(model, task, ablation="patching")
    scores = attribute(setup, "eap-ig", steps=5)
    patched = faithfulness_curve(setup, scores)
    meaned = faithfulness_curve(CircuitSetup.from_task(model, task, ablation="mean"), scores) \
        if with_mean_ablation else None
    first80 = next((i for i, f in enumerate(patched.faithfulness) if f >= 0.8), None)
    out = {
        "gap": patched.full_metric - patched.empty_metric,
        "edges_for_50": patched.fraction_for["0.5"], "edges_for_80": patched.fraction_for["0.8"],
        "edges_for_90": patched.fraction_for["0.9"], "cpr": patched.cpr, "cmd": patched.cmd,
        "nodes_for_80": patched.n_nodes[first80] if first80 is not None else math.nan,
        "mean_ablation_edges_for_80": meaned.fraction_for["0.8"] if meaned else None,
        "mean_ablation_cpr": meaned.cpr if meaned else None,
        "n_edges": patched.n_total_edges, "n_prompts": len(task),
    }
    return out, [patched.figure(), scores.figure()]


def with_mean_curve(n_layers: int, budget: Budget) -> bool:
    """Whether the mean-ablation curve runs. It is reported, not read by the rule: the quick budget skips
    it on models deeper than budget.max_layers (half of the claim's cost there), and so does the twin's run
    (budget.reads); the organisms' own runs keep it."""
    deep_quick = budget.name == "quick" and budget.max_layers is not None and n_layers > budget.max_layers
    return not deep_quick and budget.reads_any("mean_ablation_edges_for_80", "mean_ablation_cpr")


def behaviour_gap(model, task) -> float:
    """m(full) - m(empty) under patching (the clean run's metric minus the corrupt run's): what a circuit
    for the task would have to explain; the curves' own full and empty circuits give the same numbers."""
    setup = CircuitSetup.from_task(model, task, ablation="patching")
    full, empty = mean_metric(setup, torch.stack([setup.graph.full(), setup.graph.empty()])).tolist()
    return full - empty


def measure(model, budget: Budget) -> Measurement:
    per_task, figures, skipped, tasks = {}, [], {}, {}
    mean_curve = with_mean_curve(model.cfg.n_layers, budget)
    for name in TASKS:
        try:
            tasks[name] = get_task(model, name, n_prompts=max(8, budget.n_prompts // 2), seed=budget.seed)
        except NotApplicableError as err:
            skipped[name] = str(err)
    if not tasks:
        raise NotApplicableError("none of the tasks " + ", ".join(TASKS) + " fits this model's vocabulary")
    if budget.reads_any("n_tasks_with_behaviour"):   # not on the twin's run, whose curves the rule reads
        gaps = {name: behaviour_gap(model, task) for name, task in tasks.items()}
        if max(gaps.values()) < MIN_GAP:
            return _no_behaviour(gaps, skipped, tasks)
    for name, task in progress(tasks.items(), desc="C13 circuits by task", total=len(tasks)):
        per_task[name], figs = _task_metrics(model, task, with_mean_ablation=mean_curve)
        figures += figs
    counted = {n: m for n, m in per_task.items() if m["gap"] >= MIN_GAP and math.isfinite(m["edges_for_80"])}
    pool = counted or per_task               # with no behaviour anywhere, still report the curves
    needed = [m["edges_for_80"] for m in pool.values() if math.isfinite(m["edges_for_80"])]
    metrics = {
        "edges_for_80": statistics.median(needed) if needed else 1.0,
        "cpr": statistics.median(m["cpr"] for m in pool.values()),
        "n_tasks_with_behaviour": len(counted),
        "tasks": {n: {k: round(v, 4) if isinstance(v, float) else v for k, v in m.items()}
                  for n, m in per_task.items()},
        "skipped_tasks": sorted(skipped),
    }
    best = ", ".join(f"{n}: {m['edges_for_80']:.1%} of {m['n_edges']} edges (CPR {m['cpr']:.2f})"
                     for n, m in per_task.items())
    evidence = (f"Edges needed for 80% faithfulness under patching, by task: {best}. "
                f"{len(counted)} of {len(per_task)} tasks show the behaviour (clean - corrupt ≥ {MIN_GAP}); "
                f"median over them: {metrics['edges_for_80']:.1%} of the edges.")
    return Measurement(
        metrics=metrics, key_metric="edges_for_80", evidence=evidence, figures=figures,
        method=("Graph of sources (input, each head, each MLP) and destinations (attention-layer inputs, MLP "
                "inputs, logits); EAP-IG edge scores (5 steps over the input embedding); faithfulness of the "
                "top-n edges by |score| on a grid of sizes, evaluated with one forward per several circuits, "
                "under patching with the task's corrupt prompts and under mean ablation (means over them; same ranking)."))


def _no_behaviour(gaps: dict[str, float], skipped: dict, tasks: dict) -> Measurement:
    """No task shows the behaviour, so the rule is inconclusive whatever the curves: none is drawn."""
    shown = ", ".join(f"{n}: {g:.3f}" for n, g in gaps.items())
    return Measurement(
        metrics={"n_tasks_with_behaviour": 0,
                 "tasks": {n: {"gap": round(g, 4), "n_prompts": len(tasks[n])} for n, g in gaps.items()},
                 "skipped_tasks": sorted(skipped)},
        key_metric="n_tasks_with_behaviour", unmeasured=("edges_for_80",),
        evidence=(f"No task shows the behaviour (clean - corrupt metric {shown}; each below {MIN_GAP}), so no "
                  "circuit was scored: a circuit of an absent behaviour explains nothing."),
        method="The clean and the corrupt run of each task under the circuit engine (the full and the empty circuit).")
