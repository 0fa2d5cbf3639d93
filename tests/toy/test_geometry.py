"""2-D shape classification on hand-built feature arrangements."""

import math

import pytest
import torch

from mechscope.errors import InputError
from mechscope.toy.geometry import FeatureGeometry, classify_2d


def vectors(angles_deg, norms=None):
    a = torch.tensor(angles_deg, dtype=torch.float32) * math.pi / 180
    v = torch.stack([a.cos(), a.sin()], dim=1)
    if norms is not None:
        v = v * torch.tensor(norms)[:, None]
    return v


@pytest.mark.parametrize(("angles", "norms", "label"), [
    ([10, 100, 0, 0, 0], [1, 1, 0.01, 0.02, 0], "orthogonal pair"),
    ([30, 210, 0], [1, 1, 0.0], "antipodal pair"),
    ([20, 200, 110, 290, 0], [1, 1, 1, 1, 0.1], "two antipodal pairs"),
    ([20, 200, 70, 250], [1, 1, 1, 1], "two antipodal pairs"),   # not at right angles
    ([0, 120, 240], None, "triangle"),
    ([5, 77, 149, 221, 293], None, "pentagon"),
    ([0, 60, 150, 200, 300], None, "irregular 5"),
    ([0, 0], [0.1, 0.2], "none"),
])
def test_classify(angles, norms, label):
    assert classify_2d(vectors(angles, norms)).label == label


def test_pentagon_gaps_sum_to_360_in_order():
    shape = classify_2d(vectors([293, 5, 149, 77, 221]))
    assert shape.represented == [1, 3, 2, 4, 0]
    assert sum(shape.adjacent_gaps) == pytest.approx(360.0)
    assert all(g == pytest.approx(72.0, abs=1e-3) for g in shape.adjacent_gaps)


def test_feature_geometry_needs_two_dims():
    with pytest.raises(InputError, match="n_hidden = 2"):
        FeatureGeometry.from_weights(torch.zeros(1, 3, 5), torch.ones(1), torch.ones(1, 5))


def test_feature_geometry_result():
    W = vectors([5, 77, 149, 221, 293]).T[None]
    geo = FeatureGeometry.from_weights(W, torch.tensor([0.05]), torch.ones(1, 5))
    assert geo.labels == ["pentagon"]
    assert geo.to_dict()["shapes"][0]["label"] == "pentagon"
    assert len(geo.figure().data) == 5
