"""How much superposition a toy model has: dimensions per feature and per-feature dimensionality.

- dimensions per feature, m / ‖W‖²_F: about 1 when each represented feature gets a dimension,
  1/2 for antipodal pairs, 2/5 for pentagons (each feature of unit norm).
- feature dimensionality, D_i = ‖W_i‖² / Σ_j (Ŵ_i · W_j)²: the fraction of a dimension feature i
  has to itself. 1 for a dedicated dimension, 0 when not represented, and the polytope fractions
  3/4 (tetrahedron), 2/3 (triangle), 1/2 (antipodal pair), 2/5 (pentagon), 3/8 (square antiprism).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch

from mechscope.results import Result

# The fractions the paper marks on its dimensionality-versus-sparsity plot, with their polytopes.
POLYTOPE_FRACTIONS: dict[str, float] = {
    "dedicated dimension": 1.0,
    "tetrahedron": 3 / 4,
    "triangle": 2 / 3,
    "antipodal pair": 1 / 2,
    "pentagon": 2 / 5,
    "square antiprism": 3 / 8,
}


def dimensions_per_feature(W: torch.Tensor) -> torch.Tensor:
    """m / ‖W‖²_F per instance: W [n_instances, n_hidden, n_features] -> [n_instances]."""
    return W.shape[-2] / W.pow(2).sum(dim=(-2, -1))


def feature_dimensionality(W: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """D_i = ‖W_i‖² / Σ_j (Ŵ_i · W_j)²: W [n_instances, n_hidden, n_features] -> [n_instances, n_features].

    A feature that is not represented (W_i = 0) gets D = 0.
    """
    W = W.double()
    norms = W.norm(dim=-2)                                    # [I, n]
    unit = W / (norms[:, None, :] + eps)                      # Ŵ_i
    overlaps = torch.einsum("khi,khj->kij", unit, W)          # Ŵ_i · W_j  [I, n, n]
    return (norms.pow(2) / (overlaps.pow(2).sum(dim=-1) + eps)).float()


def nearest_fraction(D: torch.Tensor, tolerance: float = 0.02) -> list:
    """Name the polytope fraction within `tolerance` of each D value (None where none is).

    D: any shape; returns nested lists of the same shape.
    """
    names = list(POLYTOPE_FRACTIONS)
    values = torch.tensor([POLYTOPE_FRACTIONS[n] for n in names])
    dist = (D[..., None] - values).abs()
    best = dist.argmin(dim=-1)
    ok = dist.min(dim=-1).values <= tolerance

    def label(b, o):
        if isinstance(b, list):
            return [label(bi, oi) for bi, oi in zip(b, o, strict=True)]
        return names[b] if o else None

    return label(best.tolist(), ok.tolist())


def lowest_loss_instances(keys: torch.Tensor, loss: torch.Tensor) -> list[int]:
    """Among instances that share a setting (same row of keys [n_instances, k]), keep the lowest loss.

    Training from several seeds and keeping the best is how to find the optimum rather than a
    local minimum (two antipodal pairs where a pentagon would do better, say). Returns the kept
    instance indices in first-appearance order of each setting.
    """
    best: dict[tuple, int] = {}
    for i, key in enumerate(map(tuple, keys.tolist())):
        if key not in best or loss[i] < loss[best[key]]:
            best[key] = i
    return list(best.values())


@dataclasses.dataclass
class SuperpositionSweep(Result):
    """Superposition measured across the instances of a sparsity sweep.

    feature_probability: [I] mean probability a feature is non-zero (p = 1 - S).
    dims_per_feature: [I] m / ‖W‖²_F.
    feature_dimensionality: [I, n] D_i.  feature_norms: [I, n] ‖W_i‖.  loss: [I].
    """

    _json_exclude: ClassVar[tuple[str, ...]] = ()

    n_features: int
    n_hidden: int
    feature_probability: torch.Tensor
    dims_per_feature: torch.Tensor
    feature_dimensionality: torch.Tensor
    feature_norms: torch.Tensor
    loss: torch.Tensor

    @classmethod
    def from_weights(cls, W: torch.Tensor, feature_probability: torch.Tensor, loss: torch.Tensor) -> SuperpositionSweep:
        """W [I, m, n], feature_probability [I] or [I, n], loss [I]."""
        p = feature_probability if feature_probability.ndim == 1 else feature_probability.mean(dim=1)
        return cls(n_features=W.shape[2], n_hidden=W.shape[1], feature_probability=p.float(),
                   dims_per_feature=dimensions_per_feature(W).float(),
                   feature_dimensionality=feature_dimensionality(W),
                   feature_norms=W.norm(dim=1).float(), loss=loss.detach().float())

    @classmethod
    def from_trained(cls, trained, best_of_replicas: bool = False) -> SuperpositionSweep:
        """From a TrainedToy; with best_of_replicas, keep the lowest-loss instance per setting."""
        probs = trained.config.probabilities()
        keep = list(range(probs.shape[0]))
        if best_of_replicas:
            keys = torch.cat([probs, trained.config.importances()], dim=1)
            keep = lowest_loss_instances(keys, trained.final_loss)
        return cls.from_weights(trained.W[keep], probs[keep], trained.final_loss[keep])

    @property
    def inverse_density(self) -> torch.Tensor:
        """1 / (1 - S) = 1 / p, the x axis of the paper's plot. [I]"""
        return 1.0 / self.feature_probability

    def fraction_counts(self, tolerance: float = 0.02, min_norm: float = 0.5) -> list[dict[str, int]]:
        """Per instance, how many represented features sit within tolerance of each polytope fraction."""
        labels = nearest_fraction(self.feature_dimensionality, tolerance)
        out = []
        for row, norms in zip(labels, self.feature_norms.tolist(), strict=True):
            counts = {name: 0 for name in POLYTOPE_FRACTIONS}
            for name, norm in zip(row, norms, strict=True):
                if name is not None and norm >= min_norm:
                    counts[name] += 1
            out.append(counts)
        return out

    def figure(self):
        from mechscope.toy.figures import dimensionality_figure

        return dimensionality_figure(self)
