"""The hand-written gradient against autograd, training sanity, config validation."""

import pytest
import torch

from mechscope.errors import InputError
from mechscope.toy.config import ToyConfig, replicate, sweep_probabilities
from mechscope.toy.data import sample_features
from mechscope.toy.model import ToyModel
from mechscope.toy.train import ManualGradient, evaluate_loss, train_toy


@pytest.mark.parametrize(("activation", "block_elements"), [("relu", 100_000), ("linear", 100_000),
                                                            ("relu", 150), ("linear", 70)])
def test_manual_gradient_matches_autograd(activation, block_elements):
    g = torch.Generator().manual_seed(0)
    model = ToyModel(3, 7, 3, activation, generator=g)
    with torch.no_grad():
        model.b.normal_(generator=g)
        model.b.mul_(0.3)
    importance = torch.rand(3, 7, generator=g)
    x = sample_features(torch.tensor([[0.9] * 7, [0.3] * 7, [0.1] * 7]), 64, g)
    model.loss(x, importance).sum().backward()
    auto_W, auto_b = model.W.grad.clone(), model.b.grad.clone()
    manual = ManualGradient(model, importance, 64, block_elements=block_elements)
    if block_elements < 1000:
        assert len(manual.blocks) > 3                  # several instance groups and row blocks
    loss = manual.for_batch(x, with_loss=True)
    assert torch.allclose(model.W.grad, auto_W, atol=1e-6, rtol=1e-4)
    assert torch.allclose(model.b.grad, auto_b, atol=1e-6, rtol=1e-4)
    assert torch.allclose(loss, model.loss(x, importance).detach(), rtol=1e-5)


def test_training_lowers_loss_and_reports():
    cfg = ToyConfig(n_features=6, n_hidden=2, n_instances=3, steps=300, batch_size=256, lr=1e-2,
                    feature_probability=[1.0, 0.3, 0.05], log_every=50)
    trained = train_toy(cfg)
    before = evaluate_loss(ToyModel.from_config(cfg, torch.Generator().manual_seed(cfg.seed)), cfg)
    assert (trained.final_loss < before).all()
    assert trained.loss_history.shape == (len(trained.logged_steps), 3)
    d = trained.to_dict()
    assert "model" not in d and d["feature_probability"] == pytest.approx([1.0, 0.3, 0.05])
    assert trained.figure().data


def test_training_is_seeded():
    cfg = ToyConfig(n_instances=2, steps=50, batch_size=64, feature_probability=0.5)
    assert torch.equal(train_toy(cfg).W, train_toy(cfg).W)


def test_correlated_config_trains():
    cfg = ToyConfig(n_features=6, n_hidden=2, n_instances=2, steps=50, batch_size=64,
                    feature_probability=0.2, n_correlated_pairs=1, n_anticorrelated_pairs=1)
    assert torch.isfinite(train_toy(cfg).final_loss).all()


def test_config_tables_and_errors():
    cfg = ToyConfig(n_features=3, n_instances=2, importance=[[1, 2, 3], [4, 5, 6]], feature_probability=0.5)
    assert cfg.importances()[1].tolist() == [4, 5, 6]
    assert cfg.probabilities().shape == (2, 3)
    assert ToyConfig().probabilities()[:, 0].tolist() == pytest.approx(sweep_probabilities(10))
    assert replicate([1, 2], 2) == [1, 1, 2, 2]
    with pytest.raises(InputError, match=r"\(0, 1\]"):
        ToyConfig(feature_probability=1.5)
    with pytest.raises(InputError, match="n_features"):
        ToyConfig(n_features=3, n_correlated_pairs=2)
    with pytest.raises(InputError, match="one per n_instances"):
        ToyConfig(n_instances=3, feature_probability=[0.1, 0.2])
    with pytest.raises(InputError, match="activation"):
        ToyConfig(activation="gelu")
