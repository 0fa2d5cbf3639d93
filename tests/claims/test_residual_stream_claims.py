"""Claims C01 C02 C03 C05 C16 C17 C18 end to end on real and planted models (rules: tests/claims/test_rules.py)."""

import pytest

from mechscope.claims.base import Budget, ClaimResult
from mechscope.claims.registry import run_claims

TINY = Budget(name="tiny", n_prompts=4, seq_len=32, n_sequences=4, train_steps=8)


def _check(result: ClaimResult):
    assert isinstance(result, ClaimResult)
    assert result.rule and result.null and result.error is None, result.error
    result.to_dict()
    for fig in result.figures:
        fig.to_json()


def test_geometry_claims_on_stories260k(stories260k):
    results = {r.id: r for r in run_claims(stories260k, ids="C02,C03,C05,C17,C18")}
    for r in results.values():
        if r.verdict != "not applicable":
            _check(r)
    assert results["C03"].verdict == "not applicable"
    assert results["C02"].verdict == results["C05"].verdict == results["C17"].verdict == "supported"
    assert results["C02"].null_metrics["growth_factor_per_block"] < results["C02"].key_value  # vs its twin
    assert results["C18"].verdict in ("supported", "inconclusive", "not supported")


def test_geometry_claims_on_random_model(tiny_gpt2_model):
    results = {r.id: r for r in run_claims(tiny_gpt2_model, ids="C03,C05")}
    assert results["C03"].verdict == "not supported"
    assert results["C05"].verdict == "not supported"


@pytest.mark.parametrize("claim", ["C01", "C16"])
def test_trained_claims_run_on_stories260k(claim, stories260k):
    before = {k: v.clone() for k, v in stories260k.hf_model.state_dict().items()}
    result = run_claims(stories260k, ids=claim, budget=TINY)[0]
    _check(result)
    assert result.verdict in ("supported", "inconclusive", "not supported")
    assert result.key_value is not None
    after = stories260k.hf_model.state_dict()
    assert all(bool((after[k] == v).all()) for k, v in before.items())      # the model is left as it was


def test_c03_supported_on_a_model_with_a_planted_helix():
    import torch

    from mechscope import HookedModel
    from tests.geometry.test_positional_and_tokens import _planted_w_pos
    from tests.helpers import gpt2_tokenizer, small_hf_model

    hf = small_hf_model("gpt2", n_ctx=128, d_model=64)
    w_pos, _ = _planted_w_pos(n=128, d=64)
    with torch.no_grad():
        hf.get_submodule("transformer.wpe").weight.copy_(torch.as_tensor(w_pos, dtype=torch.float32))
    result = run_claims(HookedModel.from_hf(hf, gpt2_tokenizer()), ids="C03")[0]
    assert result.verdict == "supported", result.evidence
    assert result.metrics["top3_explained"] > 0.95 and result.null_value < 0.3    # the twin's random W_pos
