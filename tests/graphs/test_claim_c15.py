"""C15's rule just inside and just outside each threshold, and a run on the default organism."""

import math

from mechscope.claims import c15_and_or_features as c15


def _m(share, n=100, explained=0.5):
    return {"share_gates": share, "share_explained": explained, "n_children": n}


def test_c15_rule_thresholds():
    twin = _m(0.05)
    assert c15.verdict(_m(c15.MIN_SHARE), _m(c15.MIN_SHARE - c15.MARGIN)) == "supported"
    assert c15.verdict(_m(c15.MIN_SHARE), _m(c15.MIN_SHARE - c15.MARGIN + 1e-3)) == "inconclusive"
    assert c15.verdict(_m(c15.MIN_SHARE - 1e-3), twin) == "inconclusive"
    assert c15.verdict(_m(c15.FLOOR - 1e-3), _m(0.0)) == "not supported"
    assert c15.verdict(_m(0.3), _m(0.3)) == "not supported"          # no more gates than a random network
    assert c15.verdict(_m(0.5, n=c15.MIN_CHILDREN - 1), twin) == "inconclusive"
    assert c15.verdict(_m(0.5), None) == "inconclusive"


def test_c15_measures_the_default_organism():
    import mechscope
    from mechscope.claims.base import Budget

    m = c15.measure(mechscope.load("organism:tiny-gpt2"), Budget(train_steps=50, n_sequences=4))
    for key in c15.READS:
        assert math.isfinite(m.metrics[key]), key
    assert sum(m.metrics["counts"].values()) >= m.metrics["n_children"] > 0
