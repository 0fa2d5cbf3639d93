"""Crosscoders: the decoder-norm-weighted L1 by hand, per-source scales, and planted model diffs
(two copies of one model give r at 0.5; features only one source has give r near 0 or 1)."""

import numpy as np
import pytest
import torch

from mechscope.dictionary.crosscoder import CrosscoderConfig, create_crosscoder, crosscoder_diff, source_key
from mechscope.dictionary.trainer import SAETrainer, TrainerConfig
from mechscope.dictionary.transcoder import pair_batches
from mechscope.errors import InputError

HOOK = "blocks.0.hook_resid_post"
A, B = source_key("a", HOOK), source_key("b", HOOK)


def test_l1_is_weighted_by_the_sum_of_per_source_decoder_norms_and_scales_are_per_source():
    cc = create_crosscoder(CrosscoderConfig(d_in=8, d_sae=6, architecture="relu_l1", sources=(A, B), l1_coefficient=1.0))
    x = torch.cat([torch.randn(50, 4), 10 * torch.randn(50, 4)], -1)
    cc.initialize_from_data(x)
    s = cc.input_scale
    assert s[:4].unique().numel() == 1 and s[4:].unique().numel() == 1
    assert float((x[:, :4] * s[0]).pow(2).sum(-1).mean()) == pytest.approx(4, rel=1e-4)
    assert float((x[:, 4:] * s[4]).pow(2).sum(-1).mean()) == pytest.approx(4, rel=1e-4)
    out = cc(x)
    f = out.latents
    norms = cc.W_dec[:, :4].norm(dim=-1) + cc.W_dec[:, 4:].norm(dim=-1)
    assert float(out.sparsity_loss) == pytest.approx(float((f * norms).sum(-1).mean()), rel=1e-5)


def _sparse_codes(n, n_feat, p, gen):
    on = torch.rand(n, n_feat, generator=gen) < p
    return on * torch.rand(n, n_feat, generator=gen).add(0.5)


def _train(x_a, x_b, d_sae, steps, arch="topk", k=4):
    d = x_a.shape[1]
    cc = create_crosscoder(CrosscoderConfig(d_in=2 * d, d_sae=d_sae, architecture=arch, k=k, sources=(A, B),
                                            dead_after_tokens=4000, l1_coefficient=0.5))
    SAETrainer(cc, TrainerConfig(steps=steps, lr=1e-2, warmup_steps=10, show_progress=False)).fit(
        pair_batches({A: x_a, B: x_b}, 256, seed=0))
    return cc, crosscoder_diff(cc, torch.cat([x_a, x_b], -1)[:2048])


def test_two_copies_of_one_model_give_relative_norm_at_one_half():
    gen = torch.Generator().manual_seed(0)
    dirs = torch.nn.functional.normalize(torch.randn(24, 16, generator=gen), dim=-1)
    acts = _sparse_codes(6000, 24, 0.08, gen) @ dirs
    cc, diff = _train(acts, acts.clone(), d_sae=32, steps=250)
    r = np.asarray(diff.relative_norm)[np.asarray(diff.alive)]
    assert len(r) >= 16
    assert np.mean(np.abs(r - 0.5) < 0.05) >= 0.95 and abs(np.median(r) - 0.5) < 0.01, r   # one mode, at 0.5
    assert np.median(diff.shared_cosine) > 0.99
    assert max(diff.fvu_per_source.values()) < 0.2
    assert diff.to_dict()["relative_norm_histogram"]["counts"][10] >= 1


def test_features_of_one_source_only_get_relative_norm_near_zero_or_one():
    """B = A's shared features plus 6 features only B has: latents for those read r > 0.9."""
    gen = torch.Generator().manual_seed(1)
    shared = torch.nn.functional.normalize(torch.randn(16, 16, generator=gen), dim=-1)
    only_b = torch.nn.functional.normalize(torch.randn(6, 16, generator=gen), dim=-1)
    codes, extra = _sparse_codes(6000, 16, 0.08, gen), _sparse_codes(6000, 6, 0.1, gen)
    x_a, x_b = codes @ shared, codes @ shared + extra @ only_b
    cc, diff = _train(x_a, x_b, d_sae=48, steps=300)
    r = torch.tensor(diff.relative_norm)
    dec_b = torch.nn.functional.normalize(cc.source_decoders()[:, 1].detach(), dim=-1)
    for j in range(6):   # the latent whose B decoder best matches B-only feature j
        best = int((dec_b @ only_b[j]).argmax())
        assert r[best] > 0.9, (j, float(r[best]))


def test_missing_source_says_which():
    cc = create_crosscoder(CrosscoderConfig(d_in=8, sources=(A, B)))
    with pytest.raises(InputError, match="lacks crosscoder sources"):
        cc.select_training_input({A: torch.zeros(2, 4)})
    with pytest.raises(InputError, match="at least two"):
        CrosscoderConfig(d_in=8, sources=(A,))
