"""C13's rule just inside and outside each threshold, and its measurement on the shipped organism."""

from __future__ import annotations

import math

import pytest

from mechscope.claims import c13_circuits_not_crisp as c13
from mechscope.claims.base import Budget


def _m(edges_for_80, n_tasks=2):
    return {"edges_for_80": edges_for_80, "n_tasks_with_behaviour": n_tasks}


def test_verdict_thresholds():
    twin = _m(0.4, 0)
    assert c13.verdict(_m(c13.SPREAD), twin) == "supported"
    assert c13.verdict(_m(c13.SPREAD - 0.01), twin) == "inconclusive"
    assert c13.verdict(_m(c13.CRISP), twin) == "not supported"
    assert c13.verdict(_m(c13.CRISP + 0.01), twin) == "inconclusive"
    # crisp only counts when the twin needs clearly more edges
    assert c13.verdict(_m(0.08), _m(0.08 + c13.MARGIN + 0.001)) == "not supported"
    assert c13.verdict(_m(0.08), _m(0.08 + c13.MARGIN - 0.001)) == "inconclusive"
    assert c13.verdict(_m(0.08), None) == "inconclusive"
    assert c13.verdict(_m(0.9, n_tasks=0), twin) == "inconclusive"
    assert set(c13.READS) <= {"edges_for_80", "n_tasks_with_behaviour"}


@pytest.mark.slow
def test_measure_on_the_shipped_organism():
    import mechscope

    model = mechscope.load("organism:tiny-gpt2")
    result = c13.measure(model, Budget(n_prompts=16))
    m = result.metrics
    assert m["n_tasks_with_behaviour"] >= 1
    assert 0 < m["edges_for_80"] <= 1 and math.isfinite(m["cpr"])
    for task in m["tasks"].values():
        assert task["n_edges"] == 105           # 4 layers x 4 heads: 21 sources, 9 destinations
    assert result.figures
