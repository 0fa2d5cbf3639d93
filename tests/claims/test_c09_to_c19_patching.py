"""Claims C09, C10, C11, C12, C19 end to end (rules: tests/claims/test_rules.py)."""

from __future__ import annotations

import json

import pytest

from mechscope.claims.base import Budget
from mechscope.claims.registry import discover, run_one

IDS = ["C09", "C10", "C11", "C12", "C19"]
TINY = Budget(name="test", n_prompts=8, seq_len=16, n_sequences=4)


@pytest.mark.parametrize("claim", IDS)
def test_claim_runs_on_a_random_model(tiny_gpt2_model, claim):
    spec = {s.id: s for s in discover()}[claim]
    result = run_one(tiny_gpt2_model, spec, TINY)
    assert result.verdict in ("supported", "not supported", "inconclusive"), (result.verdict, result.error)
    assert result.rule and result.evidence and result.figures
    assert result.key_metric in result.metrics
    json.dumps(result.to_dict())
    assert result.verdict != "supported"   # a random-init model supports nothing about trained models


def test_claims_on_stories260k(stories260k):
    """Honest on a real tiny model: previous-token heads, no induction heads; no name vocabulary."""
    specs = {s.id: s for s in discover()}
    c09 = run_one(stories260k, specs["C09"], TINY)
    assert c09.verdict == "not supported", c09.evidence
    assert c09.metrics["max_previous_token_score"] > 0.5
    assert c09.metrics["max_prefix_matching"] < 0.1
    for cid in ("C10", "C11", "C19"):
        r = run_one(stories260k, specs[cid], TINY)
        assert r.verdict == "not applicable", (cid, r.verdict, r.error)
        assert "single tokens" in r.evidence
