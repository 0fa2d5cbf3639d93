"""The sparse feature samplers: presence rates, value distribution, correlations."""

import pytest
import torch

from mechscope.toy.data import SparseFeatureSampler, sample_features


def test_fast_sampler_statistics():
    probs = torch.tensor([[1.0] * 6, [0.3] * 6, [0.05] * 6])
    sampler = SparseFeatureSampler(probs, torch.Generator().manual_seed(0))
    x = torch.cat([sampler.sample(4096) for _ in range(4)], dim=1)       # [3, 16384, 6]
    present = x > 0
    rate = present.float().mean(dim=(1, 2))
    assert rate[0].item() == pytest.approx(1.0, abs=1e-3)
    assert rate[1].item() == pytest.approx(0.3, abs=0.01)
    assert rate[2].item() == pytest.approx(0.05, abs=0.004)
    # each of the 4 int16 lanes of a 64-bit draw must be unbiased: check per feature column
    per_feature = present[1].float().mean(dim=0)
    assert torch.allclose(per_feature, torch.full((6,), 0.3), atol=0.02)
    for k in range(3):
        vals = x[k][present[k]]
        assert vals.min().item() > 0 and vals.max().item() <= 1.0
        assert vals.mean().item() == pytest.approx(0.5, abs=0.01)
        hist = torch.histc(vals, bins=10, min=0, max=1) / vals.numel()
        assert torch.allclose(hist, torch.full((10,), 0.1), atol=0.02)


def test_fast_sampler_per_feature_probabilities():
    probs = torch.tensor([[0.9, 0.5, 0.1, 0.02]])
    sampler = SparseFeatureSampler(probs, torch.Generator().manual_seed(1))
    rate = (sampler.sample(20000) > 0).float().mean(dim=1)[0]
    assert torch.allclose(rate, probs[0], atol=0.012)


def test_fast_sampler_fills_blocks_of_instances():
    probs = torch.tensor([[1.0] * 3, [0.5] * 3, [0.01] * 3])
    sampler = SparseFeatureSampler(probs, torch.Generator().manual_seed(2))
    out = torch.empty(2, 3000, 3)
    sampler.fill(out, slice(1, 3))            # instances 1 and 2 only
    rate = (out > 0).float().mean(dim=(1, 2))
    assert rate.tolist() == pytest.approx([0.5, 0.01], abs=0.02)


def test_plain_sampler_and_shared_draws():
    probs = torch.tensor([[0.2] * 4, [0.2] * 4, [0.6] * 4])
    x = sample_features(probs, 5000, torch.Generator().manual_seed(0), shared=True)
    assert torch.equal(x[0], x[1])                       # equal settings see equal data
    assert ((x[0] > 0) <= (x[2] > 0)).all()              # common random numbers: nested supports
    rate = (x > 0).float().mean(dim=(1, 2))
    assert rate.tolist() == pytest.approx([0.2, 0.2, 0.6], abs=0.02)


def test_correlated_and_anticorrelated_pairs():
    probs = torch.full((1, 7), 0.2)
    x = sample_features(probs, 20000, torch.Generator().manual_seed(0), n_correlated_pairs=1,
                        n_anticorrelated_pairs=2)[0] > 0
    assert torch.equal(x[:, 0], x[:, 1])                 # correlated pair: together
    for a in (2, 4):
        assert not (x[:, a] & x[:, a + 1]).any()         # anticorrelated: never both
    assert x.float().mean(dim=0).tolist() == pytest.approx([0.2] * 7, abs=0.015)
    independent = (x[:, 5] & x[:, 6]).float().mean().item()
    assert independent == pytest.approx(0.04, abs=0.01)
