"""Claims C01 C02 C03 C05 C16 C17 C18: verdict rules on constructed numbers, and runs on real models."""

import dataclasses

import pytest

from mechscope.claims import c01_residual_accumulation as c01
from mechscope.claims import c02_norm_growth as c02
from mechscope.claims import c03_positional_helix as c03
from mechscope.claims import c05_token_embeddings as c05
from mechscope.claims import c16_layernorm_removable as c16
from mechscope.claims import c17_norm_dilution as c17
from mechscope.claims import c18_stages as c18
from mechscope.claims.base import Budget, ClaimResult
from mechscope.geometry.layer_robustness import LayerRobustnessResult
from mechscope.geometry.norms import NormGrowthResult
from mechscope.lens.tuned_training import LensComparison

TINY = Budget(name="tiny", n_prompts=4, seq_len=32, n_sequences=4, train_steps=8)


def _cmp(tuned, logit, final_ce=3.0):
    labels = [str(i) for i in range(len(tuned))]
    return LensComparison(labels, logit, tuned, logit, tuned, final_ce)


def test_c01_rule():
    assert c01.rule(_cmp([4, 2, 1, 0], [9, 5, 2, 0]), 1000) == "supported"
    assert c01.rule(_cmp([4, 2, 1, 0], [3, 5, 2, 0]), 1000) == "inconclusive"      # tuned loses at layer 0
    assert c01.rule(_cmp([1, 2, 3, 0], [9, 5, 4, 0]), 1000) == "not supported"     # KL rises
    assert c01.rule(_cmp([4, 2, 1, 0], [9, 5, 2, 0], final_ce=6.9), 1000) == "inconclusive"   # no prediction


def test_c02_rule():
    base = NormGrowthResult(["embed", "0", "1", "2"], [1, 2, 4, 8], [1, 1, 1, 1], 2.0, 0.99, 2.0, [], [], 10)
    assert c02.rule(base) == "supported"
    assert c02.rule(dataclasses.replace(base, fit_r2=0.5)) == "inconclusive"
    assert c02.rule(dataclasses.replace(base, growth_factor=0.9)) == "not supported"


def test_c18_rule():
    def r(agreement):
        return LayerRobustnessResult(len(agreement), 1.0, agreement, [], [], [], 10)
    assert c18.rule(r([0.2, 0.9, 0.8, 0.3])) == "supported"
    assert c18.rule(r([0.95, 0.7, 0.8, 0.9])) == "not supported"
    assert c18.rule(r([0.2, 0.9, 0.8, 0.95])) == "inconclusive"
    assert c18.rule(r([0.2, 0.3])) == "inconclusive"


def _check(result: ClaimResult, module):
    assert isinstance(result, ClaimResult)
    assert result.id == module.ID and result.slug == module.SLUG and result.rule
    result.to_dict()
    for fig in result.figures:
        fig.to_json()


def test_geometry_claims_on_stories260k(stories260k):
    verdicts = {}
    for module in (c02, c03, c05, c17, c18):
        result = module.run(stories260k, Budget())
        _check(result, module)
        verdicts[module.ID] = result.verdict
    assert verdicts["C03"] == "not applicable"
    assert verdicts["C02"] == verdicts["C05"] == verdicts["C17"] == "supported"
    assert verdicts["C18"] in ("supported", "inconclusive", "not supported")


def test_geometry_claims_on_random_model(tiny_gpt2_model):
    assert c03.run(tiny_gpt2_model, Budget()).verdict == "not supported"
    assert c05.run(tiny_gpt2_model, Budget()).verdict == "not supported"


@pytest.mark.parametrize("module", [c01, c16])
def test_trained_claims_run_on_stories260k(module, stories260k):
    before = {k: v.clone() for k, v in stories260k.hf_model.state_dict().items()}
    result = module.run(stories260k, TINY)
    _check(result, module)
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
    result = c03.run(HookedModel.from_hf(hf, gpt2_tokenizer()), Budget())
    assert result.verdict == "supported", result.evidence
    assert result.metrics["top3_explained"] > 0.95
