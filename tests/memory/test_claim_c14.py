"""C14: the rule just inside and outside each threshold, and one measurement on the organism."""

from __future__ import annotations

import pytest

from mechscope.claims import c14_mlp_memory as c14
from mechscope.claims.base import Budget, non_finite

GOOD = {"recall": 1.0, "n_corrupted": 10, "peak_mlp_recovered": 0.9, "rome_efficacy_ci95": [0.95, 1.0],
        "rome_neighbourhood_ci95": [0.95, 1.0]}
NULL = {"recall": 0.0, "n_corrupted": 0, "peak_mlp_recovered": 0.0}


def test_supported_when_every_part_clears_its_threshold():
    assert c14.verdict(GOOD, NULL) == "supported"
    edge = {**GOOD, "peak_mlp_recovered": c14.MIN_RECOVERED, "rome_efficacy_ci95": [c14.EFFICACY, 1.0],
            "rome_neighbourhood_ci95": [c14.NEIGHBOURHOOD, 1.0], "n_corrupted": c14.MIN_CORRUPTED}
    assert c14.verdict(edge, {**NULL, "peak_mlp_recovered": c14.MIN_RECOVERED - c14.MARGIN - 1e-9}) == "supported"


@pytest.mark.parametrize("key, value", [
    ("peak_mlp_recovered", c14.MIN_RECOVERED - 1e-6),
    ("rome_efficacy_ci95", [0.5, c14.EFFICACY - 1e-6]), ("rome_neighbourhood_ci95", [0.5, c14.NEIGHBOURHOOD - 1e-6])])
def test_not_supported_just_outside_each_threshold(key, value):
    assert c14.verdict({**GOOD, key: value}, NULL) == "not supported"


@pytest.mark.parametrize("key", ["rome_efficacy_ci95", "rome_neighbourhood_ci95"])
def test_inconclusive_while_an_edit_threshold_is_inside_its_interval(key):
    """Five rewrites with one failed edit (efficacy 0.8, interval [0.4, 1.0]) say neither."""
    assert c14.verdict({**GOOD, key: [0.4, 1.0]}, NULL) == "inconclusive"
    assert c14.verdict({**GOOD, key: [0.9 - 1e-6, 0.95]}, NULL) == "inconclusive"


def test_more_rewrites_while_a_threshold_is_inside_the_interval():
    assert not c14.settled_edits({"efficacy": [1, 1, 1, 1, 0], "neighbourhood": [1.0] * 5})
    assert not c14.settled_edits({"efficacy": [1.0] * 5, "neighbourhood": [0.8, 1.0, 0.8, 1.0, 1.0]})
    assert c14.settled_edits({"efficacy": [1.0] * 5, "neighbourhood": [1.0] * 5})
    assert c14.settled_edits({"efficacy": [0.0, 0.2, 0.0], "neighbourhood": [1.0] * 3})    # clearly failed


def test_twin_margin_recall_and_corruption():
    assert c14.verdict(GOOD, {**NULL, "peak_mlp_recovered": GOOD["peak_mlp_recovered"] - c14.MARGIN + 1e-6}) \
        == "not supported"
    assert c14.verdict({**GOOD, "recall": c14.MIN_RECALL - 1e-6}, NULL) == "inconclusive"
    assert c14.verdict({**GOOD, "recall": c14.MIN_RECALL}, NULL) == "supported"
    assert c14.verdict({**GOOD, "n_corrupted": c14.MIN_CORRUPTED - 1}, NULL) == "inconclusive"
    assert c14.verdict(GOOD, None) == "inconclusive"


def test_measure_on_the_organism(organism):
    m = c14.measure(organism, Budget(n_prompts=6, n_sequences=2, seq_len=32))
    for key in c14.READS:
        assert not non_finite(m.metrics[key]), key
    assert m.metrics["recall"] == 1.0 and m.metrics["n_rewrites"] >= 3
    assert len(m.metrics["mlp_effect_last_subject_by_layer"]) == organism.cfg.n_layers
    assert m.key_metric == "peak_mlp_recovered" and len(m.figures) == 3
    assert m.metrics["peak_site"] in ("last subject", "last")


def test_supported_on_the_compiled_key_value_organism():
    """The planted ground truth: memories at the last token of layers 1 and 2, one unit per fact."""
    import mechscope
    from mechscope.claims.null_twin import build_null_twin

    model = mechscope.load("organism:compiled-memory")
    budget = Budget(n_prompts=12, n_sequences=2)            # seq_len 64 > its context of 32: clamped
    m = c14.measure(model, budget)
    null = c14.measure(build_null_twin(model), budget)
    assert m.metrics["peak_site"] == "last" and sorted(set(m.metrics["fact_layers"])) == [1, 2]
    assert m.metrics["rome_efficacy"] == 1.0 and m.metrics["rome_neighbourhood"] == 1.0
    assert c14.verdict(m.metrics, null.metrics) == "supported", (m.metrics, null.metrics)
