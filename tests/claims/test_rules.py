"""Each claim's verdict rule, on hand-made metrics just inside and just outside each threshold.

verdict(metrics, null) is a pure function of numbers, so these tests need no model.
"""

from __future__ import annotations

from mechscope.claims import c02_norm_growth as c02


def test_c02_needs_growth_beyond_the_twin():
    twin = {"growth_factor_per_block": 1.05, "fit_r2": 0.99, "n_blocks": 12}
    ok = {"growth_factor_per_block": 1.05 + c02.MARGIN, "fit_r2": c02.MIN_R2, "n_blocks": 12}
    assert c02.verdict(ok, twin) == "supported"
    assert c02.verdict({**ok, "growth_factor_per_block": 1.05 + c02.MARGIN - 1e-3}, twin) == "inconclusive"
    assert c02.verdict({**ok, "fit_r2": c02.MIN_R2 - 1e-3}, twin) == "inconclusive"
    assert c02.verdict({**ok, "n_blocks": 2}, twin) == "inconclusive"
    assert c02.verdict({**ok, "growth_factor_per_block": 1.0}, twin) == "not supported"
    assert c02.verdict({**ok, "growth_factor_per_block": 1.001}, twin) == "inconclusive"
    # a model that grows just like a random network is not evidence of anything
    assert c02.verdict(twin, twin) == "inconclusive"
    assert c02.verdict(ok, None) == "inconclusive"


def test_c02_random_walk_fit_is_exact_on_sqrt_growth():
    norms = [(4.0 + 3.0 * layer) ** 0.5 for layer in range(8)]
    assert abs(c02.random_walk_r2(norms) - 1.0) < 1e-12
    assert c02.random_walk_r2([1.0, 2.0]) != c02.random_walk_r2([1.0, 2.0])  # NaN: too few points
