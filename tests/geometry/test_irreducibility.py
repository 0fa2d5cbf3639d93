"""Engels et al.'s ε-mixture and separability indices on closed-form cases and their synthetic features."""

from __future__ import annotations

import math

import pytest
import torch

from mechscope.errors import InputError
from mechscope.geometry.irreducibility import (
    binned_mutual_information,
    engels_synthetic,
    mixture_index,
    separability_index,
)


def test_mutual_information_of_a_copy_and_of_independent_coordinates():
    centres = -3 + 0.15 * (torch.arange(40, dtype=torch.float64) + 0.5)   # one point per bin of the 40 × 40 grid
    copy = torch.stack([centres, centres], 1)
    # closed form with the 1e-4 smoothing: 40 diagonal cells of mass 1/40, product 1/1600
    expected = math.log((1 / 40 + 1e-4) / (1 / 1600 + 1e-4))
    assert float(binned_mutual_information(copy)) == pytest.approx(expected, abs=1e-9)
    grid = torch.cartesian_prod(centres, centres)                          # every cell once: independent
    assert float(binned_mutual_information(grid)) == pytest.approx(0.0, abs=1e-9)


def test_engels_synthetic_features_order_as_in_the_paper():
    gauss, mix, circle = (engels_synthetic(k) for k in ("gaussian", "gaussians", "circle"))
    m = {k: mixture_index(x, n_steps=3000, seed=0).hard for k, x in
         (("gaussian", gauss), ("gaussians", mix), ("circle", circle))}
    s = {k: separability_index(x, angular_res=200).index for k, x in
         (("gaussian", gauss), ("gaussians", mix), ("circle", circle))}
    assert m["gaussians"] >= 0.3           # 60% of the points lie on two lines: a mixture
    # no line holds much of a circle (a tangent holds the arc within ε: ≤ ~0.18) or of a Gaussian
    assert m["circle"] < 0.25 and m["gaussian"] < 0.15 and m["gaussians"] > m["circle"] + 0.1
    assert s["circle"] > 1.0                # a circle is not two independent coordinates
    assert s["gaussian"] < 0.3              # a Gaussian is, after the right rotation


def test_points_on_a_line_have_mixture_index_near_their_share():
    g = torch.Generator().manual_seed(3)
    line = torch.randn(600, 1, generator=g) * torch.tensor([1.0, 2.0]) + torch.tensor([0.5, -1.0])
    cloud = torch.randn(400, 2, generator=g) * 3
    result = mixture_index(torch.cat([line, cloud]), n_steps=3000, seed=0)
    assert result.hard >= 0.6


def test_separability_needs_two_dimensions():
    with pytest.raises(InputError, match="2-d"):
        separability_index(torch.randn(10, 3))
