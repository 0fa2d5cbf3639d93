"""The geometric median of a point cloud (Weiszfeld's algorithm), used to initialise b_dec.

The geometric median minimises the sum of Euclidean distances to the points; unlike the mean it
is not dragged by a few huge activations (e.g. the first-token residual stream).
"""

from __future__ import annotations

import torch
from torch import Tensor


@torch.no_grad()
def geometric_median(points: Tensor, max_iter: int = 100, tol: float = 1e-6) -> Tensor:
    """points [n d] -> [d] minimising sum_i ||points_i - m||."""
    points = points.double()
    median = points.mean(0)
    for _ in range(max_iter):
        weights = 1.0 / (points - median).norm(dim=-1).clamp_min(1e-8)
        new = (weights[:, None] * points).sum(0) / weights.sum()
        moved = (new - median).norm()
        median = new
        if moved <= tol * (1.0 + median.norm()):
            break
    return median.float()
