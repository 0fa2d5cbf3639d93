"""C14: the rule just inside and outside each threshold, and one measurement on the organism."""

from __future__ import annotations

import math

import pytest

from mechscope.claims import c14_mlp_memory as c14
from mechscope.claims.base import Budget

GOOD = {"recall": 1.0, "n_corrupted": 10, "peak_mlp_recovered": 0.9, "rome_efficacy": 0.95,
        "rome_neighbourhood": 0.95}
NULL = {"recall": 0.0, "n_corrupted": 0, "peak_mlp_recovered": 0.0, "rome_efficacy": 0.3, "rome_neighbourhood": 0.7}


def test_supported_when_every_part_clears_its_threshold():
    assert c14.verdict(GOOD, NULL) == "supported"
    edge = {**GOOD, "peak_mlp_recovered": c14.MIN_RECOVERED, "rome_efficacy": c14.EFFICACY,
            "rome_neighbourhood": c14.NEIGHBOURHOOD, "n_corrupted": c14.MIN_CORRUPTED}
    assert c14.verdict(edge, {**NULL, "peak_mlp_recovered": c14.MIN_RECOVERED - c14.MARGIN - 1e-9}) == "supported"


@pytest.mark.parametrize("key, value", [
    ("peak_mlp_recovered", c14.MIN_RECOVERED - 1e-6),
    ("rome_efficacy", c14.EFFICACY - 1e-6), ("rome_neighbourhood", c14.NEIGHBOURHOOD - 1e-6)])
def test_not_supported_just_outside_each_threshold(key, value):
    assert c14.verdict({**GOOD, key: value}, NULL) == "not supported"


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
        assert math.isfinite(m.metrics[key]), key
    assert m.metrics["recall"] == 1.0 and m.metrics["n_rewrites"] == 3
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
