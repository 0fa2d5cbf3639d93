"""A task's head circuit chosen on one half of the prompts and scored on the other (C10, C11).

1. The baseline (accuracy, logit diff) is read on the first FIRST_PROMPTS prompts of `every`, and on
   twice as many (up to all of them) while a reading's 95% bootstrap interval holds a threshold of
   the claim's rule (then many prompts make a value near the threshold read the same under every
   seed); under a budget without max_layers (`full`) always on all of them. Two forwards per prompt,
   answer position only: a model that settles at 128 prompts saves half of a 256-prompt baseline.
2. The first budget.n_prompts prompts are split: even ones select the circuit, odd ones score it.
3. Every head's total effect on the selection half comes from `patching.screened.head_effects`
   (exact patches on small models; on deep ones an attribution screen of every head plus exact
   patches of the EXACT_MARGIN x circuit-size heads it ranks highest, at most budget.exact_heads),
   and the `fraction` of heads with the largest effect form the circuit.
4. Its faithfulness (every other head mean-ablated) is measured on the held-out half.

A run that reads none of the circuit's metrics (the null twin, whose rule reads only the logit
diff: budget.reads) takes `baseline_only`: step 1 on FIRST_PROMPTS prompts, no circuit; so does a
model whose accuracy after step 1 is below the rule's "no behaviour" bound (there is no circuit of an
absent behaviour to find, and the rule is decided without one: Measurement.unmeasured).
"""

from __future__ import annotations

import dataclasses
import math

import torch

from mechscope.claims.base import Measurement
from mechscope.patching.ablation import Faithfulness, circuit_faithfulness
from mechscope.patching.screened import HeadScreen, head_effects
from mechscope.progress import progress
from mechscope.stats import bootstrap_ci, rounded_ci
from mechscope.tasks.answer import answer_logits
from mechscope.tasks.base import Task, TaskBaseline

FIRST_PROMPTS = 64
EXACT_MARGIN = 1.5   # screened models: heads patched exactly = this x the circuit's size (at most budget.exact_heads)


@dataclasses.dataclass
class HeadCircuit:
    baseline: TaskBaseline
    task: Task                       # the first budget.n_prompts prompts
    select: Task                     # even prompts of `task`: the circuit is chosen here
    held_out: Task                   # odd prompts: its faithfulness is measured here
    screen: HeadScreen               # per-head total effect on `select`
    circuit: list[tuple[int, int]]   # (layer, head), largest effect first
    faithfulness: Faithfulness
    n_heads: int

    @property
    def screened(self) -> bool:
        """True when only some heads were patched exactly (deep models)."""
        return self.screen.n_exact < self.n_heads


def settled_baseline(model, every: Task, thresholds: dict[str, tuple[float, ...]], budget) -> TaskBaseline:
    """Step 1 of the module docstring. thresholds: {"accuracy": (...), "logit_diff": (...)}, the
    values the claim's rule compares those readings with. The prompts read double (FIRST_PROMPTS,
    then 2x, ... up to all of `every`) until no threshold lies inside a reading's interval."""
    n = len(every) if budget.max_layers is None else min(FIRST_PROMPTS, len(every))
    clean, corrupt = [], []
    done = 0
    while True:
        part = every.subset(slice(done, n))
        clean.append(answer_logits(model, part.clean_tokens, part.answer_pos))
        corrupt.append(answer_logits(model, part.corrupt_tokens, part.answer_pos))
        read = every.subset(slice(0, n))
        base = read.baseline_from_logits(torch.cat(clean), torch.cat(corrupt))
        if n == len(every) or settled(read, base, thresholds, budget.seed):
            return base
        done, n = n, min(2 * n, len(every))


def settled(task: Task, base: TaskBaseline, thresholds: dict[str, tuple[float, ...]], seed: int = 0) -> bool:
    """True when no threshold lies inside the 95% bootstrap interval of its reading (accuracy: the
    share of prompts with logit(answer) > logit(wrong); logit_diff: their mean difference)."""
    right = base.clean_answer_logits.gather(1, task.answer_ids[:, None])[:, 0]
    wrong = base.clean_answer_logits.gather(1, task.wrong_ids[:, None])[:, 0]
    per_prompt = {"accuracy": (right > wrong).float(), "logit_diff": right - wrong}
    for name, values in thresholds.items():
        low, high = bootstrap_ci(per_prompt[name], seed=seed)
        if any(low <= t <= high for t in values):
            return False
    return True


def choose_and_score(model, every: Task, budget, direction: str, fraction: float,
                     thresholds: dict[str, tuple[float, ...]], baseline: TaskBaseline | None = None) -> HeadCircuit:
    """Steps 1-4 of the module docstring; `direction` is the patching direction ("noise"/"denoise");
    `baseline`: step 1's result when the caller has it already."""
    with progress(total=3, desc=f"{every.name} head circuit") as bar:
        baseline = baseline or settled_baseline(model, every, thresholds, budget)
        bar.update(1)
        task = every.subset(slice(0, budget.n_prompts))
        select, held_out = task.subset(slice(0, None, 2)), task.subset(slice(1, None, 2))
        cfg = model.cfg
        n_heads = cfg.n_layers * cfg.n_heads
        size = max(2, round(fraction * n_heads))
        exact = budget.exact_heads(cfg.n_layers, cfg.n_heads)
        if exact is not None:   # screened: confirm the circuit's size and half again, enough to settle its edge
            exact = min(exact, math.ceil(EXACT_MARGIN * size))
        screen = head_effects(model, select, direction, exact)
        bar.update(1)
        circuit = [idx for idx, _ in screen.result.top(size)]
        faithfulness = circuit_faithfulness(model, held_out, circuit)
        bar.update(1)
    return HeadCircuit(baseline, task, select, held_out, screen, circuit, faithfulness, n_heads)


def baseline_metrics(base: TaskBaseline, corrupt_key: str, seed: int) -> dict:
    """The behaviour's readings that every run of a head-circuit claim reports."""
    return {"logit_diff": base.logit_diff, "logit_diff_ci95": rounded_ci(base.clean_per_prompt, seed=seed),
            "accuracy": base.accuracy, "top1_accuracy": base.top1_accuracy, corrupt_key: base.corrupt_metric,
            "n_prompts": base.n_prompts}


def without_circuit(model, every: Task, budget, corrupt_key: str, thresholds: dict[str, tuple[float, ...]],
                    no_behaviour: float, circuit_reads: tuple[str, ...]) -> tuple[TaskBaseline | None, Measurement | None]:
    """Step 1, and the Measurement of a run that searches no circuit: the twin's (it reads none of
    `circuit_reads`), or a model whose settled accuracy is below `no_behaviour`, where the rule says "not
    supported" whatever the circuit shows. (baseline, None) when the circuit is to be searched."""
    if not budget.reads_any(*circuit_reads):
        return None, baseline_only(model, every, budget, corrupt_key)
    base = settled_baseline(model, every, thresholds, budget)
    if base.accuracy >= no_behaviour:
        return base, None
    return base, baseline_only(model, every, budget, corrupt_key, base, circuit_reads,
                               f"accuracy {base.accuracy:.0%} is below {no_behaviour:.0%}, so the rule says not "
                               "supported whatever a circuit would show.")


def baseline_only(model, every: Task, budget, corrupt_key: str, base: TaskBaseline | None = None,
                  unmeasured: tuple[str, ...] = (), why: str = "") -> Measurement:
    """The behaviour without a circuit, which would cost ~20x the baseline: for a run whose caller reads
    only the logit diff (the null twin's: the first FIRST_PROMPTS prompts of `every`), or a model whose
    baseline `base` already decides the rule (`why`; the circuit's metrics are then `unmeasured`)."""
    base = base or settled_baseline(model, every, {}, budget)
    metrics = baseline_metrics(base, corrupt_key, budget.seed)
    return Measurement(
        metrics=metrics, key_metric="logit_diff", unmeasured=unmeasured, figures=[base.figure()],
        evidence=(f"On {base.n_prompts} {every.name} prompts the mean logit diff is {base.logit_diff:.2f} with "
                  f"{base.accuracy:.0%} of prompts correct. No circuit was searched: "
                  + (why or f"this run reads only {', '.join(budget.reads or ())}.")),
        method=f"{every.name} prompts, two forwards each (clean and corrupt), answer position only.")
