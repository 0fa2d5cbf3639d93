"""SAEs recover known sparse feature directions planted in synthetic data."""

import pytest
import torch

from mechscope.dictionary import SAEConfig, create_sae
from mechscope.dictionary.ground_truth import mean_max_cosine, sparse_feature_data
from mechscope.dictionary.trainer import SAETrainer, TrainerConfig


def _batches(x, batch_size=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    while True:
        perm = torch.randperm(x.shape[0], generator=g)
        for i in range(0, x.shape[0] - batch_size + 1, batch_size):
            yield x[perm[i: i + batch_size]]


@pytest.fixture(scope="module")
def data():
    return sparse_feature_data(n_features=64, d=32, n=16384, p_active=0.04, seed=1234)


@pytest.mark.parametrize("arch, kw, steps, lr", [
    ("topk", {"k": 3}, 600, 3e-3),
    ("batch_topk", {"k": 3}, 600, 3e-3),
    ("relu_l1", {}, 700, 1e-2),      # default coefficients
    ("jumprelu", {}, 700, 1e-2),
])
def test_sae_recovers_planted_features(data, arch, kw, steps, lr):
    sae = create_sae(SAEConfig(d_in=32, d_sae=128, architecture=arch, dead_after_tokens=5000, **kw))
    SAETrainer(sae, TrainerConfig(steps=steps, lr=lr, warmup_steps=20)).fit(_batches(data.x))
    score = mean_max_cosine(data.features, sae.W_dec.detach())
    assert score >= 0.95, f"{arch}: mean max cosine {score:.3f}"


def test_untrained_sae_does_not_recover(data):
    sae = create_sae(SAEConfig(d_in=32, d_sae=128, architecture="topk", k=3))
    assert mean_max_cosine(data.features, sae.W_dec.detach()) < 0.75
