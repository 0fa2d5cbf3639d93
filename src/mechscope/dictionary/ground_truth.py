"""Data built from known sparse features, and how well an SAE recovers them.

x = sum_i c_i * F_i with F [n_features d] random unit directions (more features than
dimensions: superposition) and each c_i nonzero with probability `p_active`. A good SAE has,
for every true feature, a decoder row pointing the same way: mean over features of the max cosine
similarity to any decoder row close to 1.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor


@dataclasses.dataclass
class SparseFeatureData:
    """features [n_features d]; x [n d]; coefficients [n n_features]."""

    features: Tensor
    x: Tensor
    coefficients: Tensor


def sparse_feature_data(n_features: int = 64, d: int = 32, n: int = 8192, p_active: float = 0.05,
                        seed: int = 0) -> SparseFeatureData:
    gen = torch.Generator().manual_seed(seed)
    features = torch.randn(n_features, d, generator=gen)
    features /= features.norm(dim=-1, keepdim=True)
    on = torch.rand(n, n_features, generator=gen) < p_active
    magnitude = 0.5 + torch.rand(n, n_features, generator=gen)
    coefficients = on * magnitude
    return SparseFeatureData(features=features, x=coefficients @ features, coefficients=coefficients)


def mean_max_cosine(true_directions: Tensor, learned_directions: Tensor) -> float:
    """Mean over true directions [m d] of the best cosine with any learned direction [n d].

    Signed cosine: a decoder row pointing the opposite way does not count as recovery.
    """
    t = true_directions / true_directions.norm(dim=-1, keepdim=True)
    learned = learned_directions / learned_directions.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return float((t @ learned.T).max(dim=-1).values.mean())
