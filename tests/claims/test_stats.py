"""The bootstrap interval against closed forms."""

from __future__ import annotations

import math

import numpy as np

from mechscope.stats import bootstrap_ci, rounded_ci, threshold_inside


def test_interval_of_a_mean_matches_the_normal_approximation():
    rng = np.random.default_rng(1)
    x = rng.normal(2.0, 1.0, size=400)
    low, high = bootstrap_ci(x, seed=0, n_resamples=2000)
    half = 1.96 * x.std(ddof=1) / math.sqrt(len(x))
    assert low < x.mean() < high
    assert abs((high - low) / 2 - half) < 0.15 * half


def test_seeded_constant_and_non_finite():
    x = [1.0, 2.0, 3.0, 10.0]
    assert bootstrap_ci(x, seed=3) == bootstrap_ci(x, seed=3)
    assert bootstrap_ci([5.0] * 7) == (5.0, 5.0)
    assert all(math.isnan(v) for v in bootstrap_ci([1.0, float("nan")]))
    assert all(math.isnan(v) for v in bootstrap_ci([]))
    pairs = np.array([[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]])
    low, high = bootstrap_ci(pairs, statistic=lambda a: a[:, 0].sum() / a[:, 1].sum())
    assert low == high == 0.5  # the ratio is 1/2 in every resample
    assert rounded_ci([0.123456, 0.123456]) == [0.1235, 0.1235]


def test_threshold_inside_the_interval_of_the_mean():
    """low < t <= high: a rule reading `mean >= t` could go either way; an interval starting on t cannot."""
    assert threshold_inside([1.4, 1.6], (1.5,)) and threshold_inside([1.4, 1.6], (3.0, 1.5))
    assert not threshold_inside([2.0, 2.2], (1.5, 3.0))
    assert not threshold_inside([1.5, 1.5], (1.5,)) and threshold_inside([1.0, 1.5], (1.5,))
