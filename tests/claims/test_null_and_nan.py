"""Verdicts that are evidence: a NaN checkpoint is refused or gives "error", and networks that have
learned nothing (random init, every adapted architecture) earn no "supported" on a claim about the model."""

from __future__ import annotations

import pytest
import torch

from mechscope.claims.base import Budget
from mechscope.claims.registry import discover, run_claims
from mechscope.errors import ModelLoadError
from tests.helpers import STORIES260K, gpt2_tokenizer, small_hf_model

SMALL = Budget(name="quick", n_prompts=16, seq_len=32, n_sequences=8, train_steps=40)
# cheap claims for the fast random-model check; the whole report runs in the slow one
FAST_IDS = "C02,C03,C05,C09,C12,C17"


def _hooked(hf, tokenizer, spec):
    from mechscope import HookedModel

    return HookedModel.from_hf(hf, tokenizer, spec=spec)


def _model_claims(results):
    return [r for r in results if not r.model_independent and r.verdict != "not implemented"]


def test_nan_checkpoint_is_refused_and_bypassing_the_check_gives_error_everywhere(tmp_path):
    import mechscope

    hf = small_hf_model("gpt2", n_layers=2, d_model=32, n_heads=2, n_ctx=64)
    with torch.no_grad():
        hf.transformer.h[1].mlp.c_fc.weight[3, 5] = float("nan")
    hf.save_pretrained(tmp_path)
    gpt2_tokenizer().save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match=r"transformer\.h\.1\.mlp\.c_fc\.weight .* 1 NaN/inf"):
        mechscope.load(str(tmp_path), device="cpu")
    model = mechscope.load(str(tmp_path), device="cpu", check_finite=False)
    about_the_model = [s.id for s in discover() if s.module is not None and s.module.NULL != "none"]
    claims = run_claims(model, ids=about_the_model, budget=SMALL)
    assert len(claims) >= 14
    for r in claims:
        assert r.verdict == "error", (r.id, r.verdict)
        assert "non-finite weights" in r.error and "c_fc" in r.error


def test_a_nan_the_rule_reads_is_an_error_not_a_verdict(tiny_gpt2_model):
    """Measured NaN (here: the twin's metric) never reaches verdict(): the runner names it."""
    from types import SimpleNamespace

    spec = next(s for s in discover() if s.id == "C02")
    twin = SimpleNamespace(hf_model=None)  # measure() on it raises: the claim must say so, not guess
    result = run_claims(tiny_gpt2_model, ids="C02", budget=SMALL, specs=[spec], null_twin=twin)[0]
    assert result.verdict == "error" and "null twin" in result.error


@pytest.mark.parametrize("arch", ["gpt2", "neox"])
def test_random_networks_support_no_cheap_claim(arch):
    model = _hooked(small_hf_model(arch, n_layers=4, d_model=64, n_heads=4, n_ctx=128), gpt2_tokenizer(),
                    f"random:{arch}")
    results = run_claims(model, ids=FAST_IDS, budget=SMALL)
    for r in results:
        assert r.verdict not in ("supported", "error"), (r.id, r.verdict, r.error, r.evidence)


def _stories_config_model():
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if not STORIES260K.exists():
        pytest.skip(f"stories260K not found at {STORIES260K}")
    torch.manual_seed(5)
    hf = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(STORIES260K)).eval()
    return _hooked(hf, AutoTokenizer.from_pretrained(STORIES260K), "random:stories260K-config")


@pytest.mark.slow
@pytest.mark.parametrize("which", ["gpt2", "neox", "llama-stories260K-config"])
def test_random_networks_support_no_claim_about_the_model(which):
    if which == "llama-stories260K-config":
        model = _stories_config_model()
    else:
        model = _hooked(small_hf_model(which, n_layers=4, d_model=64, n_heads=4, n_ctx=128), gpt2_tokenizer(),
                        f"random:{which}")
    results = run_claims(model, budget=SMALL)
    for r in _model_claims(results):
        assert r.verdict not in ("supported", "error"), (r.id, r.verdict, r.error, r.evidence)


@pytest.mark.slow
def test_random_gpt2_small_size_supports_nothing():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(n_layer=12, n_embd=768, n_head=12, n_positions=1024)).eval()
    results = run_claims(_hooked(hf, gpt2_tokenizer(), "random:gpt2-small-size"), budget=SMALL)
    for r in _model_claims(results):
        assert r.verdict not in ("supported", "error"), (r.id, r.verdict, r.error, r.evidence)


@pytest.mark.slow
@pytest.mark.parametrize("organism", [
    pytest.param("tiny-llama", marks=pytest.mark.xfail(strict=False, reason=(
        "C10's two-head circuit keeps 0.68 / 0.81 / 0.41 of the logit diff on 16 held-out prompts under seeds "
        "0 / 1 / 2 (supported, supported, inconclusive against 0.6): its faithfulness is a point reading"))),
    "tiny-gpt2"])
def test_three_seeds_give_the_same_verdicts_on_the_trained_organisms(organism):
    """The default and the learned-position organism. C21 read two attribution graphs and flipped on tiny-gpt2
    (seed 1: 1.34 edges per node, under SPARSE_EDGES; seeds 0 and 2: 1.86, 1.87) until it read more graphs
    while a threshold sat inside their interval."""
    import dataclasses

    import mechscope

    model = mechscope.load(f"organism:{organism}", device="cpu")
    verdicts = []
    for seed in (0, 1, 2):
        results = run_claims(model, budget=dataclasses.replace(Budget.named("quick"), seed=seed))
        verdicts.append({r.id: r.verdict for r in results})
    assert verdicts[0] == verdicts[1] == verdicts[2]
