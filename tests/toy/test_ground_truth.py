"""Ground truth for SAEs: hidden = W x, and scoring learned directions against W's columns."""

import pytest
import torch

from mechscope.errors import InputError
from mechscope.toy import ToyConfig, score_directions, toy_ground_truth, train_toy


@pytest.fixture(scope="module")
def trained():
    cfg = ToyConfig(n_features=8, n_hidden=3, n_instances=2, feature_probability=[1.0, 0.05],
                    steps=200, batch_size=256, lr=1e-2)
    return train_toy(cfg)


def test_hidden_is_W_times_features(trained):
    truth = toy_ground_truth(trained, instance=1, n_samples=500, seed=3)
    assert truth.hidden.shape == (500, 3) and truth.features.shape == (500, 8)
    assert torch.allclose(truth.hidden, truth.features @ trained.W[1].T, atol=1e-6)
    assert torch.equal(truth.directions, trained.W[1].T)
    assert (truth.features > 0).float().mean().item() == pytest.approx(0.05, abs=0.01)
    assert torch.equal(truth.represented, trained.W[1].norm(dim=0) >= 0.5)


def test_scoring_true_permuted_and_random_directions(trained):
    truth = toy_ground_truth(trained, instance=1, n_samples=100)
    perm = torch.randperm(8, generator=torch.Generator().manual_seed(0))
    exact = score_directions(truth.directions[perm] * 3.0, truth)          # scale does not matter
    assert exact.mean_max_cosine == pytest.approx(1.0, abs=1e-5) and exact.recovered == 1.0
    assert torch.equal(perm[exact.best_match][truth.represented], torch.arange(8)[truth.represented])
    flipped = score_directions(-truth.directions, truth)                    # wrong sign is not a match
    assert flipped.recovered < 1.0
    assert exact.figure().data


def test_scoring_rejects_wrong_width(trained):
    truth = toy_ground_truth(trained, instance=0, n_samples=10)
    with pytest.raises(InputError, match=r"\[n_latents, 3\]"):
        score_directions(torch.zeros(4, 5), truth)
    with pytest.raises(InputError, match="out of range"):
        toy_ground_truth(trained, instance=5)
