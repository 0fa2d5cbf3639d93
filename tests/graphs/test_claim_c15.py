"""C15's rule just inside and just outside each threshold, and a run on the default organism."""

from mechscope.claims import c15_and_or_features as c15
from mechscope.claims.base import non_finite


def _m(share, n=100, explained=0.5, ci=None):
    return {"share_gates": share, "share_gates_ci95": ci or [share, share], "share_explained": explained,
            "n_children": n}


def test_c15_rule_thresholds():
    twin = _m(0.05)
    assert c15.verdict(_m(c15.MIN_SHARE), _m(c15.MIN_SHARE - c15.MARGIN)) == "supported"
    assert c15.verdict(_m(c15.MIN_SHARE), _m(c15.MIN_SHARE - c15.MARGIN + 1e-3)) == "inconclusive"
    assert c15.verdict(_m(c15.MIN_SHARE - 1e-3), twin) == "inconclusive"
    assert c15.verdict(_m(c15.FLOOR - 1e-3), _m(0.0)) == "not supported"
    assert c15.verdict(_m(0.3), _m(0.3)) == "not supported"          # no more gates than a random network
    assert c15.verdict(_m(0.5, n=c15.MIN_CHILDREN - 1), twin) == "inconclusive"
    assert c15.verdict(_m(0.5), None) == "inconclusive"
    # the thresholds are read against the interval: a share of 0.21 over ~200 children is not >= 20%
    assert c15.verdict(_m(0.21, ci=[0.16, 0.27]), _m(0.05)) == "inconclusive"
    assert c15.verdict(_m(0.21, ci=[0.2, 0.22]), _m(0.05)) == "supported"
    assert c15.verdict(_m(0.04, ci=[0.02, 0.06]), _m(0.0)) == "inconclusive"


def test_c15_measures_the_default_organism():
    import mechscope
    from mechscope.claims.base import Budget

    m = c15.measure(mechscope.load("organism:tiny-gpt2"), Budget(train_steps=50, n_sequences=4))
    for key in c15.READS:
        assert not non_finite(m.metrics[key]), key
    low, high = m.metrics["share_gates_ci95"]
    assert low <= m.metrics["share_gates"] <= high
    assert sum(m.metrics["counts"].values()) >= m.metrics["n_children"] > 0
