"""Evaluation metrics against SAEs whose answers are known in closed form."""

import math

import pytest
import torch

from mechscope.dictionary import SAEConfig, create_sae
from mechscope.dictionary.evaluate import evaluate_on_activations, evaluate_sae

HOOK = "blocks.0.hook_resid_post"


def _identity_sae(d):
    """relu(x) - relu(-x) = x: a perfect reconstruction with d_sae = 2d."""
    sae = create_sae(SAEConfig(d_in=d, d_sae=2 * d, architecture="relu_l1", hook_name=HOOK, normalize_activations=False))
    eye = torch.eye(d)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye], 1))
        sae.W_dec.copy_(torch.cat([eye, -eye], 0))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae


@pytest.fixture(scope="module")
def tokens():
    return torch.randint(0, 5000, (4, 12), generator=torch.Generator().manual_seed(0))


def test_perfect_sae_recovers_all_ce_and_zero_sae_none(tiny_gpt2_model, tokens):
    perfect = evaluate_sae(_identity_sae(64), tiny_gpt2_model, tokens, batch_size=2)
    assert perfect.ce_loss_recovered == pytest.approx(1.0, abs=1e-4)
    assert perfect.kl_with_sae == pytest.approx(0.0, abs=1e-5)
    assert perfect.fvu == pytest.approx(0.0, abs=1e-6) and perfect.explained_variance == pytest.approx(1.0, abs=1e-6)
    assert perfect.n_tokens == 48 and perfect.ce_zero_ablation > perfect.ce_clean

    zero = _identity_sae(64)
    with torch.no_grad():
        zero.W_dec.zero_()
    res = evaluate_sae(zero, tiny_gpt2_model, tokens)
    assert res.ce_loss_recovered == pytest.approx(0.0, abs=1e-4)
    assert res.ce_with_sae == pytest.approx(res.ce_zero_ablation, rel=1e-5)
    assert res.fvu > 1.0  # zero reconstruction: error = ||x||^2 >= variance


def test_ce_clean_matches_an_independent_cross_entropy(tiny_gpt2_model, tokens):
    res = evaluate_sae(_identity_sae(64), tiny_gpt2_model, tokens)
    with torch.no_grad():
        logits = tiny_gpt2_model.hf_model(tokens).logits
    ce = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))
    assert res.ce_clean == pytest.approx(float(ce), rel=1e-5)


def test_activation_metrics_match_direct_computation():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(300, 16, generator=g) * 2 + 1
    sae = create_sae(SAEConfig(d_in=16, d_sae=48, architecture="topk", k=4))
    sae.initialize_from_data(x)
    res = evaluate_on_activations(sae, x.split(64))
    sae.eval()
    with torch.no_grad():
        f = sae.encode(x)
        x_hat = sae.decode(f)
    fvu = float((x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum())
    assert res.fvu == pytest.approx(fvu, rel=1e-4)
    assert res.mse == pytest.approx(float((x - x_hat).pow(2).mean()), rel=1e-4)
    assert res.l0 == pytest.approx(float((f > 0).sum(-1).float().mean()), rel=1e-6)
    fired = (f > 0).any(0)
    assert res.dead_fraction == pytest.approx(1 - float(fired.float().mean()))
    assert math.isnan(res.ce_loss_recovered)
    d = res.to_dict()
    assert "feature_density" not in d and sum(d["feature_density_histogram"]["counts"]) == 48
    assert res.figure().data
