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


def test_c09_textbook_induction_against_the_twin():
    from mechscope.claims import c09_induction_heads as c09

    twin = {"loss_drop": 0.0, "max_prefix_matching": 0.02}
    ok = {"loss_drop": c09.STRONG_DROP, "max_prefix_matching": 0.8, "min_span_prefix_matching": c09.STRONG_SCORE,
          "max_lagged_score": 0.8, "candidates_joint_share": c09.JOINT_SHARE, "copying_head_lag": 1}
    assert c09.verdict(ok, twin) == "supported"
    for key, below in [("loss_drop", c09.STRONG_DROP - 1e-3), ("min_span_prefix_matching", c09.STRONG_SCORE - 1e-3),
                       ("candidates_joint_share", c09.JOINT_SHARE - 1e-3)]:
        assert c09.verdict({**ok, key: below}, twin) == "inconclusive", key
    # a shifted circuit copies, but not by the textbook pattern: named, not called a non-copier
    assert c09.verdict({**ok, "copying_head_lag": 5}, twin) == "inconclusive"
    # the twin's own numbers raise the bar
    assert c09.verdict(ok, {"loss_drop": 0.6, "max_prefix_matching": 0.02}) == "not supported"
    assert c09.verdict(ok, {"loss_drop": 0.0, "max_prefix_matching": 0.11 + 1e-3}) == "inconclusive"
    assert c09.verdict({**ok, "loss_drop": c09.WEAK_DROP - 1e-3}, twin) == "not supported"
    assert c09.verdict({**ok, "max_lagged_score": c09.WEAK_SCORE - 1e-3}, twin) == "not supported"
    assert c09.verdict(ok, None) == "not supported"  # no null, no evidence
