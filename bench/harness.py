"""Shared benchmark harness: time callables side by side in one process, write JSON with ratios.

Each benchmark builds the same work for every contender, times each with warm-up and several
repeats (median), and writes bench/results/<name>.json with absolute seconds, ratios against the
named baseline, the targets from the issue, and the machine it ran on.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def interleaved(contenders: dict[str, Callable[[], object]], *, repeats: int = 5, warmup: int = 1) -> dict:
    """Time contenders round-robin (A B C A B C ...) so machine noise hits all alike; median per contender."""
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    runs: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            gc.collect()
            start = time.perf_counter()
            fn()
            runs[name].append(time.perf_counter() - start)
    return {k: {"median_s": statistics.median(v), "min_s": min(v), "runs_s": v} for k, v in runs.items()}


def machine() -> dict:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
    }


def write(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"benchmark": name, "machine": machine(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               **payload}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)
    return path
