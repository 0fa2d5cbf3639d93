"""Ground truth for dictionary learning: hidden activations of a toy model and its true features.

A toy model's hidden vector is h = Σ_i x_i W_i with sparse x, so the columns W_i are the features
a sparse autoencoder trained on h should find. `toy_ground_truth` samples (h, x) pairs from one
instance; `score_directions` scores any learned dictionary (decoder rows) against the W_i.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch

from mechscope.errors import InputError
from mechscope.results import Result
from mechscope.toy.data import sample_features


@dataclasses.dataclass
class ToyGroundTruth:
    """hidden: [n_samples, n_hidden] activations h = W x. features: [n_samples, n_features] the true x.
    directions: [n_features, n_hidden] the true feature directions (W columns, not normalised).
    represented: [n_features] bool, ‖W_i‖ at least min_norm (features the model actually stores).
    """

    hidden: torch.Tensor
    features: torch.Tensor
    directions: torch.Tensor
    represented: torch.Tensor
    feature_probability: torch.Tensor


def toy_ground_truth(trained, instance: int = -1, n_samples: int = 8192, seed: int = 0,
                     min_norm: float = 0.5) -> ToyGroundTruth:
    """Sample hidden activations of one instance of a TrainedToy, with its true features."""
    cfg = trained.config
    n_instances = trained.W.shape[0]
    if not -n_instances <= instance < n_instances:
        raise InputError(f"instance {instance} out of range: the model has {n_instances} instances")
    instance = instance % n_instances
    probs = cfg.probabilities()[instance:instance + 1]
    x = sample_features(probs, n_samples, torch.Generator().manual_seed(seed),
                        cfg.n_correlated_pairs, cfg.n_anticorrelated_pairs)[0]        # [N, n]
    W = trained.W[instance]                                                         # [m, n]
    return ToyGroundTruth(hidden=x @ W.T, features=x, directions=W.T.clone(),
                          represented=W.norm(dim=0) >= min_norm, feature_probability=probs[0])


@dataclasses.dataclass
class DirectionRecovery(Result):
    """How well learned directions match the true ones.

    best_cosine: [n_features] max over learned directions of cos(learned, true feature).
    mean_max_cosine: mean of best_cosine over represented features (MMCS).
    recovered: fraction of represented features with best_cosine >= threshold.
    """

    _json_exclude: ClassVar[tuple[str, ...]] = ()

    best_cosine: torch.Tensor
    best_match: torch.Tensor
    represented: torch.Tensor
    mean_max_cosine: float
    recovered: float
    threshold: float

    def figure(self):
        import plotly.graph_objects as go

        fig = go.Figure(go.Bar(y=self.best_cosine.tolist(),
                               marker_color=["#4c72b0" if r else "#bbbbbb" for r in self.represented.tolist()]))
        fig.add_hline(y=self.threshold, line=dict(dash="dot"))
        fig.update_layout(title=f"Best cosine per true feature (MMCS {self.mean_max_cosine:.3f})",
                          xaxis_title="true feature", yaxis_title="max cosine", template="plotly_white")
        return fig


def score_directions(learned: torch.Tensor, truth: ToyGroundTruth, threshold: float = 0.9) -> DirectionRecovery:
    """learned: [n_latents, n_hidden] directions (e.g. SAE decoder rows). Signed cosine: features are
    non-negative, so a flipped direction does not count as found."""
    if learned.ndim != 2 or learned.shape[1] != truth.directions.shape[1]:
        raise InputError(f"learned directions must be [n_latents, {truth.directions.shape[1]}], "
                         f"got {tuple(learned.shape)}")
    a = torch.nn.functional.normalize(learned.float(), dim=1)
    b = torch.nn.functional.normalize(truth.directions.float(), dim=1)
    cos = b @ a.T                                                                     # [n_features, n_latents]
    best, match = cos.max(dim=1)
    rep = truth.represented
    mmcs = best[rep].mean().item() if bool(rep.any()) else float("nan")
    rec = (best[rep] >= threshold).float().mean().item() if bool(rep.any()) else float("nan")
    return DirectionRecovery(best_cosine=best, best_match=match, represented=rep,
                             mean_max_cosine=mmcs, recovered=rec, threshold=threshold)
