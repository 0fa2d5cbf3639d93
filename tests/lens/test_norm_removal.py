"""Frozen norms against closed forms; the removal fine-tune restores the model and its checkpoint reloads."""

import pytest
import torch

from mechscope.errors import CheckpointError
from mechscope.lens.frozen_norms import FrozenNorms, FrozenScale, calibrate, load_norm_free
from mechscope.lens.norm_removal import NormRemovalConfig, next_token_ce, removal_order, remove_norms


def _tokens(n=4, pos=16, vocab=1000, seed=0):
    return torch.randint(3, vocab, (n, pos), generator=torch.Generator().manual_seed(seed))


def test_frozen_layernorm_is_the_closed_form(tiny_gpt2_model):
    m = tiny_gpt2_model
    ln = m.norms()["blocks.1.ln2"]
    with torch.no_grad():
        ln.bias.normal_()        # a non-zero bias, so the offset is exercised (restored below)
    try:
        x = torch.randn(2, 5, m.cfg.d_model) * 3
        frozen = FrozenNorms({"blocks.1.ln2": FrozenScale(scale=2.5, first_scale=7.0)})
        with frozen.applied(m):
            y = ln(x)
        c = torch.tensor([7.0, 2.5, 2.5, 2.5, 2.5])[None, :, None]
        expected = (x - x.mean(-1, keepdim=True)) / c * ln.weight + ln.bias
        torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ln(x), torch.nn.functional.layer_norm(x, (m.cfg.d_model,), ln.weight, ln.bias))
    finally:
        with torch.no_grad():
            ln.bias.zero_()


def test_frozen_rmsnorm_is_the_closed_form(stories260k):
    ln = stories260k.norms()["ln_final"]
    x = torch.randn(1, 4, stories260k.cfg.d_model)
    with FrozenNorms({"ln_final": FrozenScale(scale=1.5, first_scale=1.5)}).applied(stories260k):
        y = ln(x)
    torch.testing.assert_close(y, x / 1.5 * ln.weight, rtol=1e-5, atol=1e-6)
    s = stories260k.norm_scale("ln_final", x)
    torch.testing.assert_close(s, (x.pow(2).mean(-1, keepdim=True) + ln.variance_epsilon).sqrt())


@pytest.mark.parametrize("which", ["tiny_gpt2_model", "stories260k"])
def test_norm_divisor_reproduces_the_hf_norm(which, request):
    """The one divisor (model.norm_scale, also behind hook_scale) rebuilds each HF norm module's output."""
    m = request.getfixturevalue(which)
    x = torch.randn(3, 7, m.cfg.d_model, generator=torch.Generator().manual_seed(0)) * 4
    for site, module in m.norms().items():
        s = m.norm_scale(site, x)
        centred = x - x.mean(-1, keepdim=True) if m.cfg.norm == "layernorm" else x
        bias = module.bias if getattr(module, "bias", None) is not None else 0.0
        torch.testing.assert_close(centred / s * module.weight + bias, module(x), rtol=1e-5, atol=1e-5)
    _, cache = m.run_with_cache(m.to_tokens("Once upon a time"), names=["blocks.0.hook_resid_pre",
                                                                       "blocks.0.ln1.hook_scale"])
    torch.testing.assert_close(cache["blocks.0.ln1.hook_scale"], m.norm_scale("blocks.0.ln1", cache["resid_pre", 0]))


def test_calibration_is_the_mean_scale(tiny_gpt2_model):
    m = tiny_gpt2_model
    tokens = _tokens()
    fs = calibrate(m, "ln_final", [tokens])
    _, cache = m.run_with_cache(tokens, names=["ln_final.hook_scale"])
    scale = cache["ln_final.hook_scale"][..., 0]
    assert fs.scale == pytest.approx(float(scale[:, 1:].mean()), rel=1e-5)
    assert fs.first_scale == pytest.approx(float(scale[:, 0].mean()), rel=1e-5)


def test_calibrating_early_norms_stops_the_forward_there(tiny_gpt2_model):
    """A group of early norms is measured without running the later blocks or the unembedding, and reads
    the same scales as a full forward."""
    from mechscope.lens.frozen_norms import calibrate_many

    m = tiny_gpt2_model
    tokens = _tokens()
    ran = []
    with m.hooks(fwd={f"blocks.{layer}.hook_resid_post": (lambda x, hook, i=layer: ran.append(i))
                      for layer in range(m.cfg.n_layers)}):
        got = calibrate_many(m, ["blocks.0.ln2", "blocks.1.ln1"], [tokens, tokens[:1]])
    assert ran == [0, 0]                  # block 1 stopped at its ln1, twice; blocks 2-3 never ran
    _, cache = m.run_with_cache(tokens, names=["blocks.0.ln2.hook_scale", "blocks.1.ln1.hook_scale"])
    for site in ("blocks.0.ln2", "blocks.1.ln1"):
        scale = torch.cat([cache[f"{site}.hook_scale"], cache[f"{site}.hook_scale"][:1]])[..., 0]
        assert got[site].first_scale == pytest.approx(float(scale[:, 0].mean()), rel=1e-5)
        assert got[site].scale == pytest.approx(float(scale[:, 1:].mean()), rel=1e-5)


def test_remove_norms_restores_model_and_checkpoint_reloads(tiny_gpt2_model, tmp_path):
    m = tiny_gpt2_model
    train, held_out = _tokens(8, seed=1), _tokens(4, seed=2)
    before = m(held_out)
    r = remove_norms(m, train.split(4), held_out, NormRemovalConfig(steps=6, lr=1e-3), out_dir=tmp_path / "nf")
    torch.testing.assert_close(m(held_out), before, rtol=0, atol=0)         # weights restored exactly
    assert set(r.scales) == set(m.norms()) == set(removal_order(m))
    assert removal_order(m)[-1] == "ln_final" and removal_order(m)[0] == "blocks.0.ln2"
    assert r.ce_original == pytest.approx(next_token_ce(m, [held_out]))
    assert len(r.losses_control) == len(r.losses_norm_free) == 6
    loaded = load_norm_free(tmp_path / "nf", device="cpu")
    assert next_token_ce(loaded, [held_out]) == pytest.approx(r.ce_norm_free, rel=1e-5)
    r.figure()
    with pytest.raises(CheckpointError, match="not a norm-free checkpoint"):
        load_norm_free(tmp_path)


def test_position_means_keep_a_real_trend_and_drop_calibration_noise():
    """Empirical-Bayes shrinkage of per-position divisors, against planted data: a divisor that falls
    with position keeps its per-position means; one that varies by token only collapses to the mean."""
    from mechscope.lens.frozen_norms import shrunk_position_means

    gen = torch.Generator().manual_seed(0)
    n, pos = 4, 63

    def sums(samples):                                   # [n pos] -> total, squares, count per position
        s = samples.double()
        return s.sum(0), s.square().sum(0), torch.full((pos,), float(n), dtype=torch.float64)

    trend = 1.0 / torch.arange(1, pos + 1).sqrt()        # a causal random network: divisor ~ 1/sqrt(p)
    kept = shrunk_position_means(*sums(trend + 0.001 * torch.randn(n, pos, generator=gen)), float(trend.mean()))
    assert kept == pytest.approx(trend.tolist(), abs=0.01)
    noise = 1.0 + 0.3 * torch.randn(n, pos, generator=gen)   # a trained network: varies by token, not position
    overall = float(noise.mean())
    shrunk = shrunk_position_means(*sums(noise), overall)
    raw = noise.mean(0)
    assert max(abs(v - overall) for v in shrunk) < 0.5 * float((raw - overall).abs().max())


def test_frozen_scale_per_position_uses_calibrated_positions_then_the_mean():
    fs = FrozenScale(scale=2.0, first_scale=9.0, positions=[9.0, 3.0, 4.0])
    assert fs.per_position(5, "cpu").squeeze(1).tolist() == [9.0, 3.0, 4.0, 2.0, 2.0]
    assert FrozenScale(scale=2.0, first_scale=9.0).per_position(3, "cpu").squeeze(1).tolist() == [9.0, 2.0, 2.0]
