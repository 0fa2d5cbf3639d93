"""The sparsity x importance phase diagram: two features competing for one dimension.

Feature 0 has importance 1; the "extra" feature 1 has relative importance r. Depending on r and
the feature density p, the trained model either ignores the extra feature, gives it the dimension
alone, or stores both features antipodally in superposition (paper, "Phase Change" section). Each
grid cell is one instance (times `replicas` seeds, best loss kept), so the diagram is one run.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch

from mechscope.results import Result
from mechscope.toy.config import Activation, ToyConfig, replicate
from mechscope.toy.measures import lowest_loss_instances
from mechscope.toy.train import train_toy


@dataclasses.dataclass
class PhaseConfig:
    feature_density: tuple[float, ...] = tuple((10 ** -torch.linspace(0, 2, 8)).tolist())
    relative_importance: tuple[float, ...] = tuple((10 ** torch.linspace(-1, 1, 8)).tolist())
    activation: Activation = "relu"
    replicas: int = 2
    steps: int = 4_000
    batch_size: int = 1024
    lr: float = 5e-3
    seed: int = 0
    represented_norm: float = 0.5   # ‖W_i‖ above this counts as represented


@dataclasses.dataclass
class PhaseDiagram(Result):
    """phase[d, r] in PHASES order, for densities [D] (rows) and relative importances [R] (columns).

    weights: [D, R, 2] the two features' weights in the single hidden dimension.
    """

    PHASES: ClassVar[tuple[str, ...]] = ("not represented", "dedicated dimension", "superposition")

    feature_density: torch.Tensor
    relative_importance: torch.Tensor
    phase: torch.Tensor
    weights: torch.Tensor
    activation: str

    def count(self, name: str) -> int:
        return int((self.phase == self.PHASES.index(name)).sum())

    def figure(self):
        from mechscope.toy.figures import phase_figure

        return phase_figure(self)


def classify_phase(w_main: torch.Tensor, w_extra: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Phase index per cell from the two features' weights (any equal shapes) in one dimension."""
    main_on = w_main.abs() >= threshold
    extra_on = w_extra.abs() >= threshold
    phase = torch.zeros(w_main.shape, dtype=torch.long)                 # not represented
    phase[extra_on & ~main_on] = 1                                      # dedicated dimension
    phase[extra_on & main_on & (w_main * w_extra < 0)] = 2              # antipodal superposition
    return phase


def phase_diagram(config: PhaseConfig | None = None, *, show_progress: bool | None = None) -> PhaseDiagram:
    """Train every (density, importance) cell of the grid at once and classify the extra feature."""
    config = config or PhaseConfig()
    densities = list(config.feature_density)
    importances = list(config.relative_importance)
    cells = [(p, r) for p in densities for r in importances]
    settings = replicate(cells, config.replicas)
    toy = ToyConfig(n_features=2, n_hidden=1, n_instances=len(settings), activation=config.activation,
                    feature_probability=[p for p, _ in settings],
                    importance=[[1.0, r] for _, r in settings], steps=config.steps,
                    batch_size=config.batch_size, lr=config.lr, lr_schedule="cosine", seed=config.seed,
                    log_every=max(config.steps // 20, 1))
    trained = train_toy(toy, show_progress=show_progress)
    keys = torch.cat([toy.probabilities(), toy.importances()], dim=1)
    keep = lowest_loss_instances(keys, trained.final_loss)
    W = trained.W[keep, 0, :].reshape(len(densities), len(importances), 2)
    return PhaseDiagram(feature_density=torch.tensor(densities), relative_importance=torch.tensor(importances),
                        phase=classify_phase(W[..., 0], W[..., 1], config.represented_norm),
                        weights=W, activation=config.activation)
