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


class ElapsedBar:
    """A bar that fills with wall time against an expected duration, for work that cannot report its own
    steps (one claim of the report): "[3/21] C07 circular-features  12 s / ~20 s". Updated by a daemon
    thread once a second; `close()` stops it. Off in non-interactive runs, like `progress`.

        bar = ElapsedBar("[3/21] C07", expected_seconds=20.0)
        ...          # the work (its own inner bars draw below this one)
        bar.close()
    """

    def __init__(self, desc: str, expected_seconds: float, *, enabled: bool | None = None, interval: float = 1.0):
        import threading

        total = max(1, round(expected_seconds))
        self._bar = tqdm(total=total, desc=desc, disable=not progress_enabled(enabled), leave=False, dynamic_ncols=True,
                         bar_format="{desc} {bar} {elapsed} / ~" + f"{total} s")
        self._stop = threading.Event()
        self._thread = None
        if not self._bar.disable:
            self._thread = threading.Thread(target=self._tick, args=(interval,), daemon=True)
            self._thread.start()

    def _tick(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self._bar.n = min(self._bar.total, self._bar.n + interval)
            self._bar.refresh()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._bar.close()
