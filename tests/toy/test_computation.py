"""Absolute value in superposition: a hand-set exact model, and a small trained run's bookkeeping."""

import pytest
import torch

from mechscope.toy.computation import AbsConfig, AbsModel, sample_signed, train_abs


def test_hand_set_model_computes_abs_exactly():
    model = AbsModel(1, 2, 4, torch.Generator().manual_seed(0))
    with torch.no_grad():
        # neurons: ReLU(x0), ReLU(-x0), ReLU(x1), ReLU(-x1); outputs sum the pairs
        model.W_in.copy_(torch.tensor([[[1.0, 0], [-1, 0], [0, 1], [0, -1]]]))
        model.W_out.copy_(torch.tensor([[[1.0, 1, 0, 0], [0, 0, 1, 1]]]))
        model.b.zero_()
    x = sample_signed(torch.tensor([0.5]), 1000, 2, torch.Generator().manual_seed(1))
    assert torch.allclose(model(x), x.abs(), atol=1e-6)
    assert (x < 0).any() and (x > 0).any()


def test_train_abs_reports_consistent_counts():
    cfg = AbsConfig(n_features=4, n_neurons=2, n_instances=2, feature_probability=(1.0, 0.05), steps=200,
                    batch_size=256, eval_samples=2048)
    r = train_abs(cfg)
    assert r.feature_error.shape == (2, 4)
    assert r.features_computed == (r.feature_error < cfg.computed_threshold).sum(1).tolist()
    # two neurons cannot compute |x| of two dense features exactly (each needs two neurons)
    assert r.features_computed[0] <= 1
    assert r.to_dict()["n_neurons"] == 2
    assert r.figure().data
    assert r.loss.shape == (2,)
    assert float(r.feature_error.min()) >= 0
    assert pytest.approx(1.0) == r.feature_probability[0].item()


@pytest.mark.slow
def test_sparse_inputs_compute_more_features_than_neurons_allow_dense():
    cfg = AbsConfig(n_features=8, n_neurons=4, n_instances=6, feature_probability=(1.0,) * 3 + (0.05,) * 3,
                    steps=3000, lr=1e-2, batch_size=512, importance_decay=0.8)
    r = train_abs(cfg)
    dense, sparse = max(r.capacity[:3]), max(r.capacity[3:])
    assert dense == pytest.approx(2.0, abs=0.35)      # 4 neurons, 2 per |x|: two features
    assert sparse > dense + 1.0                        # superposition: more computed than m/2
