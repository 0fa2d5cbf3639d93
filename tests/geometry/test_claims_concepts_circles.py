"""C06 and C07: verdict rules just inside and outside each threshold, and measure() on the organism and its twin."""

from __future__ import annotations

import pytest

import mechscope
from mechscope.claims import base
from mechscope.claims import c06_linear_representation as c06
from mechscope.claims import c07_circular_features as c07
from mechscope.claims.null_twin import build_null_twin

C06_OK = {"loo_share_causal": 0.6, "steer_slope": 2.0, "steer_selectivity": 0.3, "additivity_error": 0.2}
C06_NULL = {"loo_share_causal": 0.05, "steer_slope": 0.1, "steer_selectivity": 0.9, "additivity_error": 0.1}


def test_c06_rule_at_its_thresholds():
    assert c06.verdict(C06_OK, C06_NULL) == "supported"
    assert c06.verdict(C06_OK, None) == "inconclusive"
    assert c06.verdict({**C06_OK, "loo_share_causal": 0.49}, C06_NULL) == "inconclusive"
    assert c06.verdict({**C06_OK, "loo_share_causal": 0.5}, C06_NULL) == "supported"
    assert c06.verdict({**C06_OK, "steer_selectivity": 0.51}, C06_NULL) == "inconclusive"
    assert c06.verdict({**C06_OK, "additivity_error": 0.31}, C06_NULL) == "inconclusive"
    assert c06.verdict({**C06_OK, "steer_slope": 1.09}, C06_NULL) == "inconclusive"
    assert c06.verdict({**C06_OK, "steer_slope": 1.11}, C06_NULL) == "supported"
    assert c06.verdict({**C06_OK, "loo_share_causal": 0.15}, C06_NULL) == "not supported"
    assert c06.verdict({**C06_OK, "steer_slope": 0.1}, C06_NULL) == "not supported"


C07_OK = {"heldout_r2": 0.7, "order_exact": 1.0, "intervention_accuracy": 0.6}
C07_NULL = {"heldout_r2": 0.0, "order_exact": 0.0, "intervention_accuracy": 0.15}


def test_c07_rule_at_its_thresholds():
    assert c07.verdict(C07_OK, C07_NULL) == "supported"
    assert c07.verdict(C07_OK, None) == "inconclusive"
    assert c07.verdict({**C07_OK, "heldout_r2": 0.59}, C07_NULL) == "inconclusive"
    assert c07.verdict({**C07_OK, "order_exact": 0.0}, C07_NULL) == "inconclusive"
    assert c07.verdict({**C07_OK, "intervention_accuracy": 0.49}, C07_NULL) == "inconclusive"
    assert c07.verdict({**C07_OK, "heldout_r2": 0.29}, C07_NULL) == "not supported"
    assert c07.verdict(C07_OK, {**C07_NULL, "heldout_r2": 0.61}) == "not supported"
    assert c07.verdict(C07_OK, {**C07_NULL, "intervention_accuracy": 0.51}) == "not supported"
    assert c07.verdict(C07_OK, {**C07_NULL, "intervention_accuracy": 0.31}) == "inconclusive"


def test_c06_and_c07_on_the_organism_against_its_twin():
    model = mechscope.load("organism:tiny-gpt2")
    twin = build_null_twin(model)
    budget = base.Budget()
    m6, n6 = c06.measure(model, budget), c06.measure(twin, budget)
    assert n6.metrics["loo_share_causal"] < 0.2 < 0.5 < m6.metrics["loo_share_causal"]
    assert c06.verdict(m6.metrics, n6.metrics) == "supported"
    m7, n7 = c07.measure(model, budget), c07.measure(twin, budget)
    assert m7.metrics["task_accuracy"] == 1.0 and n7.metrics["task_accuracy"] < 0.5
    assert m7.metrics["heldout_r2"] > n7.metrics["heldout_r2"] + 0.3
    assert m7.metrics["intervention_accuracy"] > n7.metrics["intervention_accuracy"] + 0.2
    # whatever it is, the verdict comes from the rule on these numbers
    assert c07.verdict(m7.metrics, n7.metrics) in ("supported", "inconclusive", "not supported")
    assert m7.figures and m6.figures


def test_c06_not_applicable_without_the_vocabulary(stories260k):
    from mechscope.errors import NotApplicableError

    with pytest.raises(NotApplicableError):
        c06.measure(stories260k, base.Budget())


def test_c06_not_applicable_when_the_unembedding_cannot_tell_the_pairs_apart():
    from mechscope.errors import NotApplicableError

    try:
        model = mechscope.load("organism:compiled-geometry")   # its unembedding reads only answers and readouts
    except Exception:   # noqa: BLE001 - shipped with the organisms work
        pytest.skip("compiled-geometry is not shipped on this branch")
    with pytest.raises(NotApplicableError, match="tells the pair words apart"):
        c06.measure(model, base.Budget())
