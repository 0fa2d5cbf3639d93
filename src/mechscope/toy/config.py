"""What a toy-model-of-superposition run is: a dataclass with defaults that reproduce the paper.

Elhage et al. 2022 train many small models at once, one per "instance", each with its own feature
probability (and possibly importance), so a whole sparsity sweep is one training run. The defaults
here are the paper's first experiment: 5 features squeezed into 2 dimensions, importance 0.9^i,
ten sparsities p = 20^-linspace(0, 1, 10), 10k steps of Adam at lr 1e-3 on batches of 1024.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

import torch

from mechscope.errors import InputError

Activation = Literal["relu", "linear"]


def sweep_probabilities(n_instances: int, base: float = 20.0) -> list[float]:
    """The paper's sparsity sweep: feature probability p = base^-linspace(0, 1, n_instances).

    p = 1 - S is the chance that a feature is non-zero; the first instance is dense (p = 1), the last
    has p = 1/base.
    """
    return (base ** -torch.linspace(0, 1, n_instances, dtype=torch.float64)).tolist()


@dataclasses.dataclass
class ToyConfig:
    """One batched training run of x' = act(WᵀWx + b) with W [n_hidden, n_features].

    feature_probability: None (the paper's sweep over n_instances), one float for all instances,
        a list [n_instances], or a nested list [n_instances][n_features].
    importance: None (importance_decay**i for feature i), a list [n_features], or a nested list
        [n_instances][n_features] (e.g. for the phase diagram, where importance varies by instance).
    n_correlated_pairs / n_anticorrelated_pairs: the first 2*k features come in pairs that are
        present together (correlated), then pairs of which at most one is present (anticorrelated);
        the rest are independent. Correlated data uses a slower sampler.
    lr_schedule: "constant" (the paper) or "cosine" decay to zero, which settles each instance into
        the bottom of its basin in fewer steps.
    block_elements: floats per block of the training step (a speed knob: blocks that fit the L2
        cache; it also sets how random draws map to blocks, so results depend on it like a seed).
    threads: torch intra-op threads while training (restored afterwards); 0 leaves torch's setting.
        One is fastest for these cache-sized blocks: measured 17 ms/step with 1 thread against
        278 ms/step with 2 on the shared 2-core machine (OpenMP threads wait on busy cores).
    eval_samples: fresh samples for the final per-instance loss, shared by all instances (common
        random numbers), so that replicas of one setting can be ranked reliably.
    """

    n_features: int = 5
    n_hidden: int = 2
    n_instances: int = 10
    feature_probability: float | Sequence[float] | Sequence[Sequence[float]] | None = None
    importance_decay: float = 0.9
    importance: Sequence[float] | Sequence[Sequence[float]] | None = None
    activation: Activation = "relu"
    n_correlated_pairs: int = 0
    n_anticorrelated_pairs: int = 0
    steps: int = 10_000
    batch_size: int = 1024
    lr: float = 1e-3
    lr_schedule: Literal["constant", "cosine"] = "constant"
    weight_decay: float = 0.0
    seed: int = 0
    log_every: int = 100
    eval_samples: int = 16_384
    block_elements: int = 100_000
    threads: int = 1

    def __post_init__(self):
        if self.lr_schedule not in ("constant", "cosine"):
            raise InputError(f"lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        if self.activation not in ("relu", "linear"):
            raise InputError(f"activation must be 'relu' or 'linear', got {self.activation!r}")
        for name in ("n_features", "n_hidden", "n_instances", "steps", "batch_size", "log_every", "eval_samples",
                     "block_elements"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")
        if 2 * (self.n_correlated_pairs + self.n_anticorrelated_pairs) > self.n_features:
            raise InputError(
                f"{self.n_correlated_pairs} correlated + {self.n_anticorrelated_pairs} anticorrelated pairs "
                f"need {2 * (self.n_correlated_pairs + self.n_anticorrelated_pairs)} features; "
                f"raise n_features (now {self.n_features}) or use fewer pairs")
        probs = self.probabilities()
        if not bool(((probs > 0) & (probs <= 1)).all()):
            raise InputError("feature_probability must lie in (0, 1]; p is the chance a feature is non-zero")
        if self.n_anticorrelated_pairs and bool((probs > 0.5).any()):
            raise InputError("anticorrelated pairs need feature_probability <= 0.5 (one of the pair at a time)")
        if bool((self.importances() < 0).any()):
            raise InputError("importance must be non-negative")

    @property
    def correlated(self) -> bool:
        return bool(self.n_correlated_pairs or self.n_anticorrelated_pairs)

    def probabilities(self) -> torch.Tensor:
        """Feature probabilities as a float32 tensor [n_instances, n_features]."""
        p = self.feature_probability
        if p is None:
            p = sweep_probabilities(self.n_instances)
        return _broadcast_table(p, self.n_instances, self.n_features, "feature_probability")

    def importances(self) -> torch.Tensor:
        """Importances as a float32 tensor [n_instances, n_features]."""
        imp = self.importance
        if imp is None:
            imp = (self.importance_decay ** torch.arange(self.n_features, dtype=torch.float64)).tolist()
        return _broadcast_table(imp, self.n_instances, self.n_features, "importance", per_feature_first=True)


def _broadcast_table(value, n_instances: int, n_features: int, name: str,
                     per_feature_first: bool = False) -> torch.Tensor:
    """Turn a scalar, a 1-D list or a 2-D list into [n_instances, n_features].

    A 1-D list is read as per-instance, unless per_feature_first (importance is usually per feature).
    """
    t = torch.as_tensor(value, dtype=torch.float32)
    if t.ndim == 0:
        return t.expand(n_instances, n_features).clone()
    if t.ndim == 1:
        if per_feature_first and t.numel() == n_features:
            return t[None, :].expand(n_instances, n_features).clone()
        if t.numel() == n_instances:
            return t[:, None].expand(n_instances, n_features).clone()
        want = "n_features" if per_feature_first else "n_instances"
        raise InputError(f"{name} has {t.numel()} entries; give one per {want} ({n_features if per_feature_first else n_instances})")
    if t.shape == (n_instances, n_features):
        return t.clone()
    raise InputError(f"{name} has shape {tuple(t.shape)}; expected [{n_instances}, {n_features}]")


def replicate(values: Sequence, replicas: int) -> list:
    """[a, b] -> [a, a, ..., b, b, ...]: each setting trained from `replicas` seeds (instances)."""
    return [v for v in values for _ in range(replicas)]
