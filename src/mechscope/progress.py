"""Progress bars for long work. Library code shows progress but never prints results."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress_enabled(explicit: bool | None = None) -> bool:
    if explicit is not None:
        return explicit
    if os.environ.get("MECHSCOPE_PROGRESS", "").lower() in {"0", "false", "no"}:
        return False
    return sys.stderr.isatty() or os.environ.get("MECHSCOPE_PROGRESS", "").lower() in {"1", "true", "yes"}


def progress(iterable: Iterable[T] | None = None, *, desc: str = "", total: int | None = None,
             enabled: bool | None = None, **kwargs) -> tqdm:
    """A tqdm bar on stderr that switches itself off in non-interactive runs (CI, tests)."""
    return tqdm(iterable, desc=desc, total=total, disable=not progress_enabled(enabled),
                dynamic_ncols=True, leave=False, **kwargs)
