"""Toy models of superposition (Elhage et al. 2022): train, measure, draw.

    from mechscope.toy import ToyConfig, train_toy, SuperpositionSweep, FeatureGeometry
    trained = train_toy(ToyConfig())                 # n=5, m=2, importance 0.9^i, 10 sparsities
    FeatureGeometry.from_trained(trained).labels     # 'orthogonal pair' ... 'pentagon'
    SuperpositionSweep.from_trained(trained).figure()
"""

from mechscope.toy.computation import AbsConfig, AbsResult, train_abs
from mechscope.toy.config import ToyConfig, replicate, sweep_probabilities
from mechscope.toy.data import SparseFeatureSampler, sample_features
from mechscope.toy.geometry import FeatureGeometry, Shape2D, classify_2d
from mechscope.toy.ground_truth import DirectionRecovery, ToyGroundTruth, score_directions, toy_ground_truth
from mechscope.toy.measures import (
    POLYTOPE_FRACTIONS,
    SuperpositionSweep,
    dimensions_per_feature,
    feature_dimensionality,
    lowest_loss_instances,
    nearest_fraction,
)
from mechscope.toy.model import ToyModel
from mechscope.toy.phase import PhaseConfig, PhaseDiagram, phase_diagram
from mechscope.toy.train import TrainedToy, evaluate_loss, train_toy

__all__ = [
    "AbsConfig", "AbsResult", "train_abs",
    "ToyConfig", "replicate", "sweep_probabilities",
    "SparseFeatureSampler", "sample_features",
    "FeatureGeometry", "Shape2D", "classify_2d",
    "DirectionRecovery", "ToyGroundTruth", "score_directions", "toy_ground_truth",
    "POLYTOPE_FRACTIONS", "SuperpositionSweep", "dimensions_per_feature", "feature_dimensionality",
    "lowest_loss_instances", "nearest_fraction",
    "ToyModel",
    "PhaseConfig", "PhaseDiagram", "phase_diagram",
    "TrainedToy", "evaluate_loss", "train_toy",
]
