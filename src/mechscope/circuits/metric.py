"""The quantity a circuit is judged by: one number per prompt from the logits at the answer position.

A `CircuitMetric` wraps a `mechscope.tasks.Task` metric (``logit_diff``, ``prob``, ``kl``) or any
function ``fn(answer_logits [rows d_vocab], prompt_index [rows]) -> [rows]``. Rows may repeat
prompts (the engine stacks several circuits per forward), so `prompt_index` says which prompt each
row is. A function that does not return one number per row is refused with an InputError.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from mechscope.errors import InputError
from mechscope.tasks.base import METRICS, Task


@dataclasses.dataclass
class CircuitMetric:
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    name: str = "custom"

    def __call__(self, answer_logits: torch.Tensor, prompt_index: torch.Tensor) -> torch.Tensor:
        out = self.fn(answer_logits, prompt_index)
        rows = answer_logits.shape[0]
        if not isinstance(out, torch.Tensor) or out.shape != (rows,):
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise InputError(f"metric {self.name!r} returned {got} for {rows} rows; a circuit metric must "
                             f"return one scalar per prompt (shape [{rows}]), e.g. a logit difference")
        return out


def task_metric(task: Task, metric: str | Callable | None = None, *, clean_answer_logits: torch.Tensor | None = None
                ) -> CircuitMetric:
    """The task's metric (or `metric`: a name in METRICS or a callable) as a CircuitMetric."""
    if callable(metric):
        return CircuitMetric(metric, getattr(metric, "__name__", "custom"))
    name = metric or task.metric
    if name not in METRICS:
        raise InputError(f"unknown metric {name!r}: use one of {', '.join(METRICS)} or pass a function "
                         "(answer_logits [rows d_vocab], prompt_index [rows]) -> [rows]")
    if name == "kl" and clean_answer_logits is None:
        raise InputError("the 'kl' metric needs the clean answer logits (clean_answer_logits=)")
    scored = dataclasses.replace(task, metric=name)

    def fn(answer_logits, prompt_index):
        return scored.score(answer_logits, prompt_index, reference_logits=clean_answer_logits)
    return CircuitMetric(fn, name)
