"""Logit lens: against the model's own logits and against HF's hidden states (an independent path)."""

import math

import pytest
import torch

from mechscope.lens.logit_lens import LogitLensConfig, logit_lens
from mechscope.model.cache import accumulated_resid_names


def _tokens(model, n=4, pos=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, model.cfg.d_vocab, (n, pos), generator=g)


def test_lens_at_last_layer_equals_model_logits(tiny_gpt2_model):
    m = tiny_gpt2_model
    tokens = _tokens(m)
    logits, cache = m.run_with_cache(tokens, names=accumulated_resid_names(m.cfg.n_layers))
    lens_logits = m.unembed(m.ln_final(cache[f"blocks.{m.cfg.n_layers - 1}.hook_resid_post"]))
    torch.testing.assert_close(lens_logits, logits, rtol=0, atol=1e-5)
    r = logit_lens(m, tokens)
    assert r.ce[-1] == pytest.approx(r.final_ce, abs=1e-6)
    assert r.kl_to_final[-1] == pytest.approx(0.0, abs=1e-6)
    assert r.top1_agreement[-1] == 1.0
    assert r.n_tokens == tokens[:, 1:].numel()


def test_middle_layer_ce_matches_hf_hidden_states(tiny_gpt2_model):
    """CE at every point recomputed from output_hidden_states with HF's own ln_f and lm_head."""
    m = tiny_gpt2_model
    tokens = _tokens(m, seed=1)
    r = logit_lens(m, tokens)
    with torch.no_grad():
        hidden = m.hf_model(tokens, output_hidden_states=True).hidden_states   # last one is after ln_f
        for point in range(m.cfg.n_layers):
            logits = m.hf_model.lm_head(m.hf_model.transformer.ln_f(hidden[point]))
            ce = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                                   tokens[:, 1:].reshape(-1))
            assert r.ce[point] == pytest.approx(float(ce), rel=1e-5)


def test_streamed_batches_equal_one_batch(tiny_gpt2_model):
    tokens = _tokens(tiny_gpt2_model, n=6, seed=2)
    whole = logit_lens(tiny_gpt2_model, tokens, LogitLensConfig(batch_size=6))
    streamed = logit_lens(tiny_gpt2_model, iter(tokens.split(2)))
    for a, b in ((whole.ce, streamed.ce), (whole.kl_to_final, streamed.kl_to_final)):
        assert a == pytest.approx(b, rel=1e-5)
    assert whole.example_top_tokens == streamed.example_top_tokens


def test_example_grid_shape_and_escaping(tiny_gpt2_model):
    m = tiny_gpt2_model
    tokens = m.to_tokens("<b>bold</b> & <script>alert(1)</script> tokens", prepend_bos=False)
    r = logit_lens(m, tokens, LogitLensConfig(top_k=3, example_positions=8))
    n_pos = min(8, tokens.shape[1])
    assert len(r.example_top_tokens) == m.cfg.n_layers + 1
    assert all(len(row) == n_pos and all(len(cell) == 3 for cell in row) for row in r.example_top_tokens)
    probs = torch.tensor(r.example_top_probs)
    assert bool((probs[..., :-1] >= probs[..., 1:]).all())      # sorted, descending
    fig_json = r.figure().to_json()
    assert "<script>" not in fig_json and "&lt;" in fig_json
    r.curves_figure()


def test_stories260k_prediction_sharpens_with_depth(stories260k):
    tokens = stories260k.to_tokens(["Once upon a time, there was a little girl named Lily. She loved to play."])
    r = logit_lens(stories260k, tokens)
    assert r.kl_to_final[0] > r.kl_to_final[-2] > r.kl_to_final[-1] == pytest.approx(0, abs=1e-6)
    assert r.ce[0] > r.final_ce
    assert r.final_ce < 0.5 * math.log(stories260k.cfg.d_vocab)
    assert r.layer_labels == ["embed", "0", "1", "2", "3", "4"]
