"""C14: the rule just inside and outside each threshold, and one measurement on the organism."""

from __future__ import annotations

import math

import pytest

from mechscope.claims import c14_mlp_memory as c14
from mechscope.claims.base import Budget

GOOD = {"recall": 1.0, "peak_mlp_effect": 0.5, "peak_mlp_layer_is_interior": 1, "rome_efficacy": 0.95,
        "rome_neighbourhood": 0.95}
NULL = {"recall": 0.0, "peak_mlp_effect": 0.05, "peak_mlp_layer_is_interior": 1, "rome_efficacy": 0.3,
        "rome_neighbourhood": 0.7}


def test_supported_when_every_part_clears_its_threshold():
    assert c14.verdict(GOOD, NULL) == "supported"
    edge = {**GOOD, "peak_mlp_effect": c14.MIN_EFFECT, "rome_efficacy": c14.EFFICACY,
            "rome_neighbourhood": c14.NEIGHBOURHOOD}
    assert c14.verdict(edge, {**NULL, "peak_mlp_effect": c14.MIN_EFFECT - c14.MARGIN - 1e-9}) == "supported"


@pytest.mark.parametrize("key, value", [
    ("peak_mlp_effect", c14.MIN_EFFECT - 1e-6), ("peak_mlp_layer_is_interior", 0),
    ("rome_efficacy", c14.EFFICACY - 1e-6), ("rome_neighbourhood", c14.NEIGHBOURHOOD - 1e-6)])
def test_not_supported_just_outside_each_threshold(key, value):
    assert c14.verdict({**GOOD, key: value}, NULL) == "not supported"


def test_twin_margin_and_recall():
    assert c14.verdict(GOOD, {**NULL, "peak_mlp_effect": GOOD["peak_mlp_effect"] - c14.MARGIN + 1e-6}) \
        == "not supported"
    assert c14.verdict({**GOOD, "recall": c14.MIN_RECALL - 1e-6}, NULL) == "inconclusive"
    assert c14.verdict({**GOOD, "recall": c14.MIN_RECALL}, NULL) == "supported"
    assert c14.verdict(GOOD, None) == "inconclusive"


def test_measure_on_the_organism(organism):
    m = c14.measure(organism, Budget(n_prompts=6, n_sequences=2, seq_len=32))
    for key in c14.READS:
        assert math.isfinite(m.metrics[key]), key
    assert m.metrics["recall"] == 1.0 and m.metrics["n_rewrites"] == 3
    assert len(m.metrics["mlp_effect_last_subject_by_layer"]) == organism.cfg.n_layers
    assert m.key_metric == "peak_mlp_effect" and len(m.figures) == 3
