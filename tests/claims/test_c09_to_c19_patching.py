"""Claims C09, C10, C11, C12, C19: verdict rules on hand-picked numbers, and end-to-end runs."""

from __future__ import annotations

import json

import pytest

from mechscope.claims import (
    c09_induction_heads,
    c10_ioi_circuit,
    c11_docstring,
    c12_information_movement,
    c19_abba_baba,
)
from mechscope.claims.base import Budget
from mechscope.claims.registry import discover, run_one

MODULES = [c09_induction_heads, c10_ioi_circuit, c11_docstring, c12_information_movement, c19_abba_baba]
TINY = Budget(name="test", n_prompts=8, seq_len=16, n_sequences=4)


def test_verdict_rules():
    v09 = c09_induction_heads.verdict
    assert v09(0.9, 3.0, 0.5) == "supported"
    assert v09(0.03, 0.26, 0.09) == "not supported"        # stories260K's numbers
    assert v09(0.5, 3.0, 0.0) == "inconclusive"
    v10 = c10_ioi_circuit.verdict
    assert v10(0.99, 3.5, 0.87) == "supported"
    assert v10(0.5, 0.0, 0.9) == "not supported"
    assert v10(0.95, 3.0, 0.1) == "not supported"
    assert v10(0.8, 0.5, 0.9) == "inconclusive"
    v11 = c11_docstring.verdict
    assert v11(0.9, 0.8, 3) == "supported" and v11(0.9, 0.8, 1) == "not supported"
    assert v11(0.3, 0.9, 3) == "not supported" and v11(0.7, 0.9, 2) == "inconclusive"
    v12 = c12_information_movement.verdict
    assert v12(3.0, 0.9) == "supported" and v12(3.0, 0.2) == "not supported" and v12(0.1, 0.9) == "inconclusive"
    v19 = c19_abba_baba.verdict
    assert v19(0.98, 0.5, 0.55) == "supported" and v19(0.6, 0.5, 0.5) == "not supported"
    assert v19(0.98, 0.5, 0.9) == "inconclusive"


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.ID)
def test_claim_runs_on_a_random_model(tiny_gpt2_model, module):
    spec = {s.id: s for s in discover()}[module.ID]
    result = run_one(tiny_gpt2_model, spec, TINY)
    assert result.verdict in ("supported", "not supported", "inconclusive"), (result.verdict, result.error)
    assert result.rule and result.evidence and result.figures
    assert result.key_metric in result.metrics
    json.dumps(result.to_dict())
    # a random-init model has no induction heads and does no IOI / docstring completion
    if module.ID in ("C09", "C10", "C11"):
        assert result.verdict != "supported"


def test_claims_on_stories260k(stories260k):
    """Honest on a real tiny model: previous-token heads, no induction heads; no name vocabulary."""
    specs = {s.id: s for s in discover()}
    c09 = run_one(stories260k, specs["C09"], TINY)
    assert c09.verdict == "not supported", c09.evidence
    assert c09.metrics["max_previous_token_score"] > 0.5
    assert c09.metrics["max_induction_score"] < 0.1
    for cid in ("C10", "C11", "C19"):
        r = run_one(stories260k, specs[cid], TINY)
        assert r.verdict == "not applicable", (cid, r.verdict, r.error)
        assert "single tokens" in r.evidence
