"""Uncertainty of a mean over prompts: a seeded percentile bootstrap.

    low, high = bootstrap_ci(per_prompt_values, seed=0)          # 95% interval of the mean
    low, high = bootstrap_ci(values, statistic=ratio_of_means)   # any statistic of the resampled rows

Rows (prompts, sequences) are resampled with replacement; the interval is the 2.5th and 97.5th
percentile of the statistic over `n_resamples` resamples. Non-finite rows make the interval NaN
(the caller's finite check then refuses to read it), never a silently narrower one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch


def bootstrap_ci(values: Sequence[float] | np.ndarray | torch.Tensor, *, seed: int = 0, n_resamples: int = 1000,
                 level: float = 0.95, statistic: Callable[[np.ndarray], float] | None = None
                 ) -> tuple[float, float]:
    """(low, high) percentile-bootstrap interval of `statistic` (default: the mean) over rows of `values`.

    values: [n] or [n k] (rows are resampled together, e.g. clean and corrupt metric of one prompt).
    statistic: maps a resampled [n] / [n k] array to a number; default mean of a 1-d array.
    """
    x = values.detach().double().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values, float)
    n = len(x)
    if n == 0 or not np.isfinite(x).all():
        return float("nan"), float("nan")
    stat = statistic or (lambda a: float(a.mean()))
    if n == 1:
        v = stat(x)
        return v, v
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_resamples, n))
    draws = np.array([stat(x[i]) for i in idx], dtype=float)
    alpha = (1.0 - level) / 2
    low, high = np.quantile(draws, [alpha, 1.0 - alpha])
    return float(low), float(high)


def rounded_ci(values, *, digits: int = 4, **kwargs) -> list[float]:
    """bootstrap_ci as a JSON-ready [low, high] list rounded to `digits`."""
    low, high = bootstrap_ci(values, **kwargs)
    return [round(low, digits), round(high, digits)]


def threshold_inside(values, thresholds: Sequence[float], *, seed: int = 0) -> bool:
    """True when a rule's `value >= t` could go either way for some t in `thresholds`: low < t <= high on the
    bootstrap interval of the mean of `values` (a claim reads more samples while this holds)."""
    low, high = bootstrap_ci(values, seed=seed)
    return any(low < t <= high for t in thresholds)
