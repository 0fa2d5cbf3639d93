"""Elhage et al. 2022, dimensionality sweep: 200 features in 20 dimensions, equal importance.

The paper's recipe: 20 sparsities p = 20^-linspace(0, 1, 20) in one run, Adam lr 1e-3, batch
1024, 10k steps. Measured here (seed 0): dims/feature 0.526, 0.510, 0.504, 0.502 at 1/(1-S) = 2.2,
2.6, 3.0, 3.5; at 1/(1-S) = 4.1, 15 features at D ~ 2/5 (pentagons); at 4.8, 29 at D ~ 3/8
(square antiprisms); counts from the unblocked run, the bands hold for the current one.
Training takes 170 s on one quiet core (bench/results/tms.json), ~10 min under heavy load: slow.
"""

import pytest
import torch

from mechscope.toy import SuperpositionSweep, ToyConfig, sweep_probabilities, train_toy


@pytest.fixture(scope="module")
def sweep():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cfg = ToyConfig(n_features=200, n_hidden=20, n_instances=20, importance_decay=1.0,
                    feature_probability=sweep_probabilities(20), steps=10_000, batch_size=1024, lr=1e-3)
    result = SuperpositionSweep.from_trained(train_toy(cfg))
    torch.set_num_threads(threads)
    return result


@pytest.mark.slow
def test_plateau_at_one_half(sweep):
    inv = sweep.inverse_density
    on_plateau = (inv >= 2.2) & (inv <= 3.6)
    assert int(on_plateau.sum()) >= 3
    assert torch.allclose(sweep.dims_per_feature[on_plateau], torch.full((int(on_plateau.sum()),), 0.5), atol=0.03)
    assert sweep.dims_per_feature[0].item() == pytest.approx(1.0, abs=0.03)      # dense: no superposition
    assert sweep.dims_per_feature[-1].item() < 0.3                              # sparse: much more


@pytest.mark.slow
def test_pentagon_and_square_antiprism_clusters(sweep):
    counts = sweep.fraction_counts(tolerance=0.02)
    sparser = [c for c, x in zip(counts, sweep.inverse_density.tolist(), strict=True) if 3.6 < x <= 8]
    assert max(c["pentagon"] for c in sparser) >= 10
    assert max(c["square antiprism"] for c in sparser) >= 10
    # and dims/feature keeps falling below the antipodal plateau as sparsity grows
    assert (sweep.dims_per_feature.diff()[-8:] < 0.005).all()
