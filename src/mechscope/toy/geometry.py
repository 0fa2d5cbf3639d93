"""Feature geometry: which polytope the represented features form.

In two hidden dimensions the picture is the paper's row of little plots: the represented features
(‖W_i‖ above a threshold) are arrows in the plane, and their angles say whether they are an
orthogonal pair, antipodal pairs, a triangle, a pentagon. In more dimensions the per-feature
dimensionality D_i (measures.py) names the polytope each feature belongs to.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import torch

from mechscope.errors import InputError
from mechscope.results import Result

_POLYGON_NAMES = {3: "triangle", 4: "square", 5: "pentagon", 6: "hexagon", 7: "heptagon", 8: "octagon"}


@dataclasses.dataclass
class Shape2D:
    """The arrangement of one instance's represented features in the plane.

    label: "none", "single", "orthogonal pair", "antipodal pair", "two antipodal pairs",
        "triangle", "square", "pentagon", ... or "irregular k" when no rule fits.
    represented: indices of the features above the norm threshold, in angle order.
    angles: their angles in degrees, in [0, 360), sorted.
    adjacent_gaps: angle from each to the next (wrapping), degrees; sums to 360.
    antipodal_pairs: number of disjoint pairs with cosine below -cos(tolerance).
    """

    label: str
    represented: list[int]
    angles: list[float]
    adjacent_gaps: list[float]
    antipodal_pairs: int


def classify_2d(vectors: torch.Tensor, min_norm: float = 0.5, tolerance_deg: float = 10.0) -> Shape2D:
    """Classify feature vectors [n_features, 2] (one instance, W transposed) into a Shape2D."""
    if vectors.ndim != 2 or vectors.shape[1] != 2:
        raise InputError(f"classify_2d needs [n_features, 2] vectors, got {tuple(vectors.shape)}")
    v = vectors.double()
    norms = v.norm(dim=1)
    idx = [i for i in range(v.shape[0]) if norms[i] >= min_norm]
    angles = [math.degrees(math.atan2(v[i, 1].item(), v[i, 0].item())) % 360.0 for i in idx]
    order = sorted(range(len(idx)), key=lambda k: angles[k])
    idx = [idx[k] for k in order]
    angles = [angles[k] for k in order]
    k = len(idx)
    gaps = [((angles[(j + 1) % k] - angles[j]) % 360.0) or (360.0 if k == 1 else 0.0) for j in range(k)]
    pairs = _antipodal_pairs(angles, tolerance_deg)

    def near(a, b):
        return abs(a - b) <= tolerance_deg

    if k == 0:
        label = "none"
    elif k == 1:
        label = "single"
    elif k == 2 and near(min(gaps), 90.0):
        label = "orthogonal pair"
    elif k == 2 and pairs == 1:
        label = "antipodal pair"
    elif k == 4 and pairs == 2:
        label = "two antipodal pairs"  # at right angles this is a square; the paper names the pairs
    elif k >= 3 and all(near(g, 360.0 / k) for g in gaps):
        label = _POLYGON_NAMES.get(k, f"regular {k}-gon")
    else:
        label = f"irregular {k}"
    return Shape2D(label=label, represented=idx, angles=angles, adjacent_gaps=gaps, antipodal_pairs=pairs)


def _antipodal_pairs(angles: list[float], tolerance_deg: float) -> int:
    """Greedy count of disjoint pairs of angles about 180° apart."""
    used: set[int] = set()
    count = 0
    for a in range(len(angles)):
        if a in used:
            continue
        for b in range(a + 1, len(angles)):
            if b not in used and abs(((angles[b] - angles[a]) % 360.0) - 180.0) <= tolerance_deg:
                used |= {a, b}
                count += 1
                break
    return count


@dataclasses.dataclass
class FeatureGeometry(Result):
    """The 2-D feature vectors of every instance and the shapes they form.

    vectors: [I, n_features, 2] (W transposed). feature_probability: [I]. importance: [I, n].
    shapes: one Shape2D per instance.
    """

    _json_exclude: ClassVar[tuple[str, ...]] = ()

    vectors: torch.Tensor
    feature_probability: torch.Tensor
    importance: torch.Tensor
    shapes: list[Shape2D]
    min_norm: float = 0.5

    @classmethod
    def from_weights(cls, W: torch.Tensor, feature_probability: torch.Tensor, importance: torch.Tensor,
                     min_norm: float = 0.5, tolerance_deg: float = 10.0) -> FeatureGeometry:
        """W [I, 2, n], feature_probability [I] or [I, n], importance [I, n]."""
        if W.shape[1] != 2:
            raise InputError(f"feature geometry in the plane needs n_hidden = 2, got {W.shape[1]}; "
                             "use feature_dimensionality for higher dimensions")
        vectors = W.detach().transpose(1, 2).float()
        p = feature_probability if feature_probability.ndim == 1 else feature_probability.mean(dim=1)
        shapes = [classify_2d(v, min_norm, tolerance_deg) for v in vectors]
        return cls(vectors=vectors, feature_probability=p.float(), importance=importance.float(),
                   shapes=shapes, min_norm=min_norm)

    @classmethod
    def from_trained(cls, trained, instances: list[int] | None = None, **kwargs) -> FeatureGeometry:
        keep = instances if instances is not None else list(range(trained.W.shape[0]))
        cfg = trained.config
        return cls.from_weights(trained.W[keep], cfg.probabilities()[keep], cfg.importances()[keep], **kwargs)

    @property
    def labels(self) -> list[str]:
        return [s.label for s in self.shapes]

    def figure(self):
        from mechscope.toy.figures import geometry_figure

        return geometry_figure(self)
