"""A task's head circuit chosen on one half of the prompts and scored on the other (C10, C11).

1. The baseline (accuracy, logit diff) is read on every prompt of `every` (two forward passes, so
   many prompts are cheap and a threshold near the measured value reads the same under every seed).
2. The first budget.n_prompts prompts are split: even ones select the circuit, odd ones score it.
3. Every head's total effect on the selection half comes from `patching.screened.head_effects`
   (exact patches on small models; an attribution screen plus exact patches of the top heads on deep
   ones), and the `fraction` of heads with the largest effect form the circuit.
4. Its faithfulness (every other head mean-ablated) is measured on the held-out half.
"""

from __future__ import annotations

import dataclasses

from mechscope.patching.ablation import Faithfulness, circuit_faithfulness
from mechscope.patching.screened import HeadScreen, head_effects
from mechscope.tasks.base import Task, TaskBaseline


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


def choose_and_score(model, every: Task, budget, direction: str, fraction: float) -> HeadCircuit:
    """Steps 1-4 of the module docstring; `direction` is the patching direction ("noise"/"denoise")."""
    baseline = every.baseline(model)
    task = every.subset(slice(0, budget.n_prompts))
    select, held_out = task.subset(slice(0, None, 2)), task.subset(slice(1, None, 2))
    cfg = model.cfg
    screen = head_effects(model, select, direction, budget.exact_heads(cfg.n_layers, cfg.n_heads))
    n_heads = cfg.n_layers * cfg.n_heads
    circuit = [idx for idx, _ in screen.result.top(max(2, round(fraction * n_heads)))]
    return HeadCircuit(baseline, task, select, held_out, screen, circuit,
                       circuit_faithfulness(model, held_out, circuit), n_heads)
