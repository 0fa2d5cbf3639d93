"""superposition_sweep (toy/sweep.py) against the same run written out by hand."""

from __future__ import annotations

import torch

from mechscope.toy import FeatureGeometry, SuperpositionSweep, ToyConfig, replicate, train_toy
from mechscope.toy.measures import lowest_loss_instances
from mechscope.toy.sweep import superposition_sweep

DENSITIES = (1.0, 0.1)


def test_sweep_equals_training_every_seed_and_keeping_the_best():
    base = ToyConfig(n_features=5, n_hidden=2, steps=60, batch_size=128, lr=1e-2, seed=4, eval_samples=2048)
    run = superposition_sweep(base, DENSITIES, replicas=3)
    assert run.config.n_instances == 6 and run.config.feature_probability == [1.0] * 3 + [0.1] * 3

    cfg = ToyConfig(n_features=5, n_hidden=2, steps=60, batch_size=128, lr=1e-2, seed=4, eval_samples=2048,
                    n_instances=6, feature_probability=replicate(list(DENSITIES), 3))
    trained = train_toy(cfg)
    torch.testing.assert_close(run.trained.W, trained.W, rtol=0, atol=0)
    expected = SuperpositionSweep.from_trained(trained, best_of_replicas=True)
    torch.testing.assert_close(run.sweep.dims_per_feature, expected.dims_per_feature)
    keep = lowest_loss_instances(torch.cat([cfg.probabilities(), cfg.importances()], 1), trained.final_loss)
    assert len(keep) == 2
    assert run.geometry.labels == FeatureGeometry.from_trained(trained, keep).labels
    assert len(run.figures()) == 3


def test_no_geometry_beyond_two_dimensions():
    run = superposition_sweep(ToyConfig(n_features=6, n_hidden=3, steps=20, eval_samples=512), DENSITIES)
    assert run.geometry is None and len(run.figures()) == 2
    assert run.sweep.dims_per_feature.shape == (2,)
