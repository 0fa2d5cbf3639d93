"""Dimensionality measures against closed forms and an independent loop implementation."""

import math

import numpy as np
import pytest
import torch

from mechscope.toy.measures import (
    SuperpositionSweep,
    dimensions_per_feature,
    feature_dimensionality,
    lowest_loss_instances,
    nearest_fraction,
)


def polygon(k: int, n_extra: int = 0) -> torch.Tensor:
    """[1, 2, k + n_extra]: a regular k-gon of unit vectors plus unrepresented features."""
    ang = torch.arange(k, dtype=torch.float64) * 2 * math.pi / k
    W = torch.stack([ang.cos(), ang.sin()])
    return torch.cat([W, torch.zeros(2, n_extra, dtype=torch.float64)], dim=1)[None].float()


def tetrahedron() -> torch.Tensor:
    v = torch.tensor([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=torch.float32) / math.sqrt(3)
    return v.T[None]


def loop_dimensionality(W: np.ndarray) -> np.ndarray:
    m, n = W.shape
    out = np.zeros(n)
    for i in range(n):
        norm = np.linalg.norm(W[:, i])
        if norm == 0:
            continue
        unit = W[:, i] / norm
        out[i] = norm**2 / sum(float(unit @ W[:, j]) ** 2 for j in range(n))
    return out


@pytest.mark.parametrize(("W", "expected_D", "expected_dpf"), [
    (polygon(4)[:, :, [0, 1]], [1.0, 1.0], 1.0),           # orthogonal pair
    (polygon(2), [0.5, 0.5], 1.0),                          # one antipodal pair in 2 dims
    (polygon(4), [0.5] * 4, 0.5),                           # two antipodal pairs
    (polygon(3), [2 / 3] * 3, 2 / 3),                       # triangle
    (polygon(5), [0.4] * 5, 0.4),                           # pentagon
    (tetrahedron(), [0.75] * 4, 0.75),                      # tetrahedron
])
def test_closed_forms(W, expected_D, expected_dpf):
    D = feature_dimensionality(W)[0]
    assert torch.allclose(D, torch.tensor(expected_D), atol=1e-5)
    assert dimensions_per_feature(W)[0].item() == pytest.approx(expected_dpf, abs=1e-5)


def test_pentagon_dims_per_feature_is_two_fifths():
    assert dimensions_per_feature(polygon(5))[0].item() == pytest.approx(0.4, abs=1e-6)


def test_unrepresented_feature_has_zero_dimensionality():
    D = feature_dimensionality(polygon(5, n_extra=2))[0]
    assert torch.allclose(D[:5], torch.full((5,), 0.4), atol=1e-5)
    assert torch.all(D[5:] == 0)


def test_matches_loop_on_random_weights():
    g = torch.Generator().manual_seed(3)
    W = torch.randn(4, 6, 15, generator=g)
    W[:, :, 3] = 0
    ours = feature_dimensionality(W).numpy()
    for k in range(4):
        np.testing.assert_allclose(ours[k], loop_dimensionality(W[k].double().numpy()), rtol=1e-4, atol=1e-6)


def test_nearest_fraction_and_counts():
    D = torch.tensor([[0.5, 0.41, 0.376, 0.9, 0.0]])
    assert nearest_fraction(D) == [["antipodal pair", "pentagon", "square antiprism", None, None]]
    sweep = SuperpositionSweep.from_weights(polygon(5), torch.tensor([0.05]), torch.tensor([0.0]))
    assert sweep.fraction_counts()[0]["pentagon"] == 5
    d = sweep.to_dict()
    assert d["dims_per_feature"] == pytest.approx([0.4], abs=1e-6)
    assert len(sweep.figure().data) >= 2


def test_lowest_loss_instances_groups_equal_settings():
    keys = torch.tensor([[1.0], [1.0], [0.5], [0.5], [0.5]])
    loss = torch.tensor([0.3, 0.2, 0.1, 0.05, 0.2])
    assert lowest_loss_instances(keys, loss) == [1, 3]
