"""Dashboards: right numbers in, escaped HTML out."""

import pytest
import torch

from mechscope.dictionary import SAEConfig, create_sae
from mechscope.dictionary.dashboard import feature_dashboard

HOOK = "blocks.1.hook_resid_post"


def test_dashboard_numbers_and_escaping(tiny_gpt2_model, tmp_path):
    model = tiny_gpt2_model
    text = "<script>alert('x')</script> & <b>bold</b> " * 3
    tokens = model.to_tokens([text, text[::-1]])[:, :24]
    sae = create_sae(SAEConfig(d_in=64, d_sae=32, architecture="topk", k=4, hook_name=HOOK))
    _, cache = model.run_with_cache(tokens, names=[HOOK])
    sae.initialize_from_data(cache[HOOK].reshape(-1, 64))
    dash = feature_dashboard(sae, model, tokens, latents=[0, 5], n_contexts=3, window=4)
    with torch.no_grad():
        acts = sae.eval().encode(cache[HOOK])
        W_U = model.W_U.detach()
    for card in dash.cards:
        a = acts[..., card.latent]
        assert card.max_activation == pytest.approx(float(a.max()), rel=1e-5)
        assert card.firing_frequency == pytest.approx(float((a > 0).float().mean()))
        if card.contexts:
            ctx = card.contexts[0]
            assert abs(ctx.activations[ctx.max_position] - float(a.max())) < 1e-5
        with torch.no_grad():
            direct = (sae.W_dec[card.latent] / sae.input_scale) @ W_U
        assert card.top_logits[0][1] == pytest.approx(float(direct.max()), rel=1e-4, abs=1e-6)
        assert card.bottom_logits[0][1] == pytest.approx(float(direct.min()), rel=1e-4, abs=1e-6)
        assert sum(card.histogram_counts) == int((a > 0).sum())
    page = dash.to_html("dash <title>")
    assert "<script" not in page and "&lt;" in page and "<b>" not in page
    assert "dash &lt;title&gt;" in page
    path = dash.save_html(tmp_path / "d.html")
    assert path.read_text().startswith("<!doctype html>")
    assert dash.to_dict()["cards"][0]["latent"] == 0
