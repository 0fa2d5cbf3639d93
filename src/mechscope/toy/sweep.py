"""The sparsity sweep of Toy Models of Superposition: the one pipeline `mechscope tms sweep` and claim C08 call.

    run = superposition_sweep(ToyConfig(n_features=5, n_hidden=2), densities=(1.0, 0.3, 0.1), replicas=4)
    run.sweep.dims_per_feature      # [n_densities], the lowest-loss seed of each density
    run.geometry.labels             # 2-D shapes ('pentagon', ...) when n_hidden == 2, else run.geometry is None

Every (density, seed) pair is one instance of a single batched training run; per density the
lowest-loss seed is kept, which finds the optimum rather than a local minimum.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from mechscope.toy.config import ToyConfig, replicate
from mechscope.toy.geometry import FeatureGeometry
from mechscope.toy.measures import SuperpositionSweep, lowest_loss_instances
from mechscope.toy.train import TrainedToy, train_toy


@dataclasses.dataclass
class SweepRun:
    """config: what was trained (n_densities × replicas instances); trained: the run; sweep: dims/feature
    per density (best seed); geometry: the kept instances' 2-D feature geometry, None unless n_hidden == 2."""

    config: ToyConfig
    trained: TrainedToy
    sweep: SuperpositionSweep
    geometry: FeatureGeometry | None

    def figures(self) -> list:
        """Geometry (if any), dims/feature against sparsity, training curves."""
        return ([self.geometry.figure()] if self.geometry is not None else []) + [self.sweep.figure(),
                                                                                 self.trained.figure()]


def superposition_sweep(config: ToyConfig, densities: Sequence[float], replicas: int = 1, *,
                        show_progress: bool | None = None) -> SweepRun:
    """Train `config` at every feature density in `densities` from `replicas` seeds each.

    config's n_instances and feature_probability are replaced by len(densities) × replicas instances;
    every other field (features, hidden size, importance, optimiser, seed) is used as given.
    """
    cfg = dataclasses.replace(config, n_instances=len(densities) * replicas,
                              feature_probability=replicate(list(densities), replicas))
    trained = train_toy(cfg, show_progress=show_progress)
    sweep = SuperpositionSweep.from_trained(trained, best_of_replicas=replicas > 1)
    geometry = None
    if cfg.n_hidden == 2:
        keep = lowest_loss_instances(torch.cat([cfg.probabilities(), cfg.importances()], 1), trained.final_loss)
        geometry = FeatureGeometry.from_trained(trained, keep)
    return SweepRun(cfg, trained, sweep, geometry)
