"""Transcoders: the forward against hand-written algebra, training on a planted sparse map, splicing
against an independent spliced forward, the weights-only pullback, and the SAELens format (read
back by SAELens itself)."""

import pytest
import torch

from mechscope.dictionary.trainer import SAETrainer, TrainerConfig
from mechscope.dictionary.transcoder import (
    TranscoderConfig,
    create_transcoder,
    harvest_pairs,
    pair_batches,
    pullback,
)
from mechscope.dictionary.transcoder_evaluate import evaluate_transcoder, transcoder_fvu
from mechscope.dictionary.transcoder_format import load_saelens_transcoder, save_saelens_transcoder
from mechscope.errors import InputError

LAYER = 1
IN, OUT = f"blocks.{LAYER}.ln2.hook_normalized", f"blocks.{LAYER}.hook_mlp_out"


def _random_tc(arch="relu_l1", skip=True, d=64, d_sae=96, seed=0):
    tc = create_transcoder(TranscoderConfig(d_in=d, d_sae=d_sae, architecture=arch, k=8, hook_name=IN,
                                            output_hook_name=OUT, skip_connection=skip, seed=seed,
                                            jumprelu_init_threshold=0.05))
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in tc.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        if arch == "jumprelu":
            tc.log_threshold.fill_(-3.0)
        tc.input_scale.fill_(1.7)
        tc.output_scale.fill_(0.6)
        tc.initialized.fill_(True)
    return tc.eval()


@pytest.mark.parametrize("arch", ["relu_l1", "topk", "batch_topk", "jumprelu"])
def test_forward_matches_the_written_formula(arch):
    tc = _random_tc(arch)
    x, y = torch.randn(20, 64), torch.randn(20, 64)
    pre = (x * 1.7) @ tc.W_enc + tc.b_enc
    if arch == "topk":
        keep = pre.topk(8, dim=-1).indices
        f = torch.zeros_like(pre).scatter_(-1, keep, pre.gather(-1, keep).relu())
    elif arch == "relu_l1":
        f = pre.relu()
    elif arch == "jumprelu":
        f = pre * (pre > tc.threshold)
    else:
        f = pre.relu() * (pre.relu() > tc.threshold)
    expected = (f @ tc.W_dec + tc.b_dec + (x * 1.7) @ tc.W_skip) / 0.6
    out = tc(torch.cat([x, y], -1))
    torch.testing.assert_close(out.reconstruction, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(tc.transcode(x), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.latents, f, atol=1e-6, rtol=1e-6)


def test_training_learns_a_planted_sparse_map():
    """y = D^T ReLU(E^T x - 1.5), 48 planted units (~3 active per token): a TopK transcoder fits it far
    better than the best linear map from x to y (the null: what the skip connection alone could do)."""
    gen = torch.Generator().manual_seed(0)
    d, n_units = 32, 48
    E = torch.randn(d, n_units, generator=gen)
    E /= E.norm(dim=0)
    D = torch.randn(n_units, d, generator=gen)
    x = torch.randn(8192, d, generator=gen)
    y = torch.relu(x @ E - 1.5) @ D
    tc = create_transcoder(TranscoderConfig(d_in=d, d_sae=64, k=8, hook_name="a", output_hook_name="b",
                                            dead_after_tokens=5000))
    SAETrainer(tc, TrainerConfig(steps=400, lr=1e-2, warmup_steps=10, show_progress=False)).fit(
        pair_batches({"a": x, "b": y}, 256, seed=0))
    out = tc.eval()(torch.cat([x[:2048], y[:2048]], -1))
    x1 = torch.cat([x, torch.ones(len(x), 1)], -1)
    linear = x1 @ torch.linalg.lstsq(x1, y).solution
    linear_fvu = float(((y - linear) ** 2).sum() / ((y - y.mean(0)) ** 2).sum())
    assert float(out.fvu) < 0.15 and linear_fvu > 0.4, (float(out.fvu), linear_fvu)


def test_harvest_and_splice_match_an_independent_spliced_forward(tiny_gpt2_model):
    model = tiny_gpt2_model
    tokens = torch.randint(0, 5000, (4, 10), generator=torch.Generator().manual_seed(0))
    tc = _random_tc("relu_l1")
    pairs = harvest_pairs(model, tokens, [tc], batch_size=3)
    _, cache = model.run_with_cache(tokens, names=[IN, OUT])
    torch.testing.assert_close(pairs[IN], cache[IN].reshape(-1, 64))
    torch.testing.assert_close(pairs[OUT], cache[OUT].reshape(-1, 64))

    result = evaluate_transcoder(tc, model, tokens, batch_size=3)
    # independently: the MLP input at this layer is unchanged by splicing at this layer's output
    y_hat = tc.transcode(cache[IN])
    with model.hooks(fwd={OUT: lambda act, hook: y_hat}):
        logits = model(tokens)
    ce = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten())
    assert result.ce_with_sae == pytest.approx(float(ce), abs=1e-4)
    y = cache[OUT].reshape(-1, 64)
    fvu = ((y - y_hat.reshape(-1, 64)) ** 2).sum() / ((y - y.mean(0)) ** 2).sum()
    assert result.fvu == pytest.approx(float(fvu), rel=1e-4)
    other = _random_tc("relu_l1", seed=3)
    assert transcoder_fvu([tc, other], model, tokens, batch_size=3) == pytest.approx(
        [result.fvu, evaluate_transcoder(other, model, tokens).fvu], rel=1e-6)

    dead = _random_tc("relu_l1", skip=False)
    with torch.no_grad():
        dead.W_dec.zero_()
        dead.b_dec.zero_()
    zero = evaluate_transcoder(dead, model, tokens, batch_size=4)
    assert zero.ce_loss_recovered == pytest.approx(0.0, abs=1e-5)
    assert zero.ce_with_sae == pytest.approx(zero.ce_zero_ablation, abs=1e-5)


def test_pullback_is_what_a_decoded_latent_does_to_the_next_encoder():
    src, tgt = _random_tc("relu_l1", seed=1), _random_tc("relu_l1", seed=2)
    P = pullback(src, tgt)
    i = 5
    written = src.decode(torch.eye(96)[i]) - src.decode(torch.zeros(96))          # raw residual write of latent i
    moved = tgt.pre_activations(written[None] * tgt.input_scale) - tgt.pre_activations(torch.zeros(1, 64))
    torch.testing.assert_close(P[i], moved[0], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("arch,skip", [("relu_l1", True), ("relu_l1", False), ("jumprelu", True), ("batch_topk", False)])
def test_saelens_transcoder_round_trip_and_saelens_reads_it(tmp_path, arch, skip):
    tc = _random_tc(arch, skip=skip)
    if arch == "batch_topk":
        with torch.no_grad():
            tc.threshold.fill_(0.2)
    save_saelens_transcoder(tc, tmp_path / "tc")
    back = load_saelens_transcoder(tmp_path / "tc")
    x = torch.randn(16, 64)
    torch.testing.assert_close(back.transcode(x), tc.transcode(x), atol=1e-5, rtol=1e-5)
    assert back.cfg.hook_name == IN and back.cfg.output_hook_name == OUT
    sae_lens = pytest.importorskip("sae_lens")
    theirs = sae_lens.SAE.load_from_disk(str(tmp_path / "tc"), device="cpu")
    torch.testing.assert_close(theirs(x), tc.transcode(x), atol=1e-5, rtol=1e-5)


def test_topk_transcoder_export_and_wrong_batches_say_what_to_do(tmp_path):
    tc = _random_tc("topk")
    with pytest.raises(InputError, match="no topk transcoder"):
        save_saelens_transcoder(tc, tmp_path / "x")
    with pytest.raises(InputError, match="harvest both"):
        tc.select_training_input({IN: torch.zeros(2, 64)})
