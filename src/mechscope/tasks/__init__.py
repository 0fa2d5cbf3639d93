"""Prompt tasks: clean/corrupt pairs, single-token answers and a metric.

    from mechscope.tasks import get_task
    task = get_task(model, "ioi", n_prompts=32)
"""

from __future__ import annotations

from mechscope.errors import InputError
from mechscope.tasks.base import Task, TaskBaseline
from mechscope.tasks.days import days_task
from mechscope.tasks.docstring import docstring_task
from mechscope.tasks.facts import facts_task
from mechscope.tasks.induction import induction_task, repeated_tokens
from mechscope.tasks.ioi import ioi_task

BUILDERS = {"induction": induction_task, "ioi": ioi_task, "docstring": docstring_task,
            "facts": facts_task, "days": days_task}


def get_task(model, name: str, **kwargs) -> Task:
    """Build a named task for `model` (kwargs go to the builder, e.g. n_prompts, seed, metric)."""
    try:
        builder = BUILDERS[name]
    except KeyError:
        raise InputError(f"unknown task {name!r}: use one of {', '.join(BUILDERS)}") from None
    return builder(model, **kwargs)


__all__ = ["BUILDERS", "Task", "TaskBaseline", "days_task", "docstring_task", "facts_task", "get_task",
           "induction_task", "ioi_task", "repeated_tokens"]
