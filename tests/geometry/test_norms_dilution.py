"""Norm growth and dilution against hand computations from HF hidden states."""

import numpy as np
import pytest
import torch

from mechscope.errors import InputError
from mechscope.geometry.dilution import norm_dilution
from mechscope.geometry.norms import ov_norms, residual_norms


def _tokens(vocab, seed=0):
    return torch.randint(3, vocab, (4, 10), generator=torch.Generator().manual_seed(seed))


def _hidden(model, tokens):
    """Residual at each point from HF's output_hidden_states (LLaMA: the last entry is after the norm,
    so the final residual comes from our hook)."""
    with torch.no_grad():
        out = model.hf_model(tokens, output_hidden_states=True).hidden_states
    _, cache = model.run_with_cache(tokens, names=[f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"])
    return list(out[:-1]) + [cache[f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"]]


def test_residual_norms_match_hand_computation(stories260k):
    tokens = _tokens(stories260k.cfg.d_vocab)
    r = residual_norms(stories260k, tokens.split(2))
    hidden = _hidden(stories260k, tokens)
    expected = [float(h[:, 1:].norm(dim=-1).mean()) for h in hidden]
    first = [float(h[:, 0].norm(dim=-1).mean()) for h in hidden]
    assert r.mean_norm == pytest.approx(expected, rel=1e-5)
    assert r.first_position_norm == pytest.approx(first, rel=1e-5)
    slope = np.polyfit(np.arange(5), np.log(expected[1:]), 1)[0]
    assert r.growth_factor == pytest.approx(np.exp(slope), rel=1e-6)
    assert r.growth_factor > 1.1 and r.fit_r2 > 0.9        # stories260K's norm grows steadily
    r.figure()


def test_ov_norms_match_explicit_products(tiny_gpt2_model):
    m = tiny_gpt2_model
    norms = ov_norms(m)
    for layer, head in ((0, 0), (1, 3)):
        ov = m.W_V[layer, head] @ m.W_O[layer, head]
        assert float(norms[layer, head]) == pytest.approx(float(torch.linalg.matrix_norm(ov)), rel=1e-4)


def test_dilution_matches_hand_computation(stories260k):
    tokens = _tokens(stories260k.cfg.d_vocab, seed=1)
    r = norm_dilution(stories260k, tokens)
    hidden = [h[:, 1:] for h in _hidden(stories260k, tokens)]
    u = hidden[0] / hidden[0].norm(dim=-1, keepdim=True)
    share = [float(((h * u).sum(-1) / h.norm(dim=-1)).mean()) for h in hidden]
    retained = [float(((h * u).sum(-1) / hidden[0].norm(dim=-1)).mean()) for h in hidden]
    assert r.share == pytest.approx(share, rel=1e-4, abs=1e-6)
    assert r.retained == pytest.approx(retained, rel=1e-4, abs=1e-6)
    assert r.share[0] == pytest.approx(1.0) and r.norm_ratio[0] == pytest.approx(1.0)
    block = norm_dilution(stories260k, tokens, source_point=2)
    assert block.source == "block 1" and len(block.share) == 4
    with pytest.raises(InputError):
        norm_dilution(stories260k, tokens, source_point=5)
