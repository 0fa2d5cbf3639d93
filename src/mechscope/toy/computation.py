"""Superposition with computation: computing |x| with a hidden ReLU layer.

The paper's later section: inputs x_i are U[-1, 1] with probability p, else 0; the model is
y' = ReLU(W₂ ReLU(W₁ x) + b) with more features than neurons, and the target is |x|. Without
superposition a feature needs two neurons (|x| = ReLU(x) + ReLU(-x)), so m neurons compute at
most m/2 features; with sparse inputs the model computes more, with polysemantic neurons
(measured: 8 features, 4 neurons, importance 0.8^i: capacity about 2 features dense, about 4 at
p = 0.05, mostly as half-computed features).
Instances are stacked like the plain toy model; this small model trains with autograd.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import torch
from torch import nn

from mechscope.errors import InputError
from mechscope.progress import progress
from mechscope.results import Result
from mechscope.toy.config import sweep_probabilities


@dataclasses.dataclass
class AbsConfig:
    n_features: int = 8
    n_neurons: int = 4
    feature_probability: tuple[float, ...] | None = None   # None: sweep_probabilities(n_instances, 100)
    n_instances: int = 6
    importance_decay: float = 0.8
    steps: int = 3_000
    batch_size: int = 512
    lr: float = 1e-2
    seed: int = 0
    computed_threshold: float = 0.25   # computed: error below this fraction of the best constant's
    eval_samples: int = 16_384

    def probabilities(self) -> torch.Tensor:
        """[n_instances]"""
        p = self.feature_probability or sweep_probabilities(self.n_instances, 100.0)
        if len(p) != self.n_instances:
            raise InputError(f"feature_probability has {len(p)} entries; n_instances is {self.n_instances}")
        return torch.tensor(p, dtype=torch.float32)


class AbsModel(nn.Module):
    """y' = ReLU(W_out ReLU(W_in x) + b), W_in [I, neurons, features], W_out [I, features, neurons]."""

    def __init__(self, n_instances: int, n_features: int, n_neurons: int, generator: torch.Generator):
        super().__init__()
        std = math.sqrt(2.0 / (n_features + n_neurons))
        self.W_in = nn.Parameter(torch.randn(n_instances, n_neurons, n_features, generator=generator) * std)
        self.W_out = nn.Parameter(torch.randn(n_instances, n_features, n_neurons, generator=generator) * std)
        self.b = nn.Parameter(torch.zeros(n_instances, n_features))

    def neurons(self, x: torch.Tensor) -> torch.Tensor:
        """x [I, batch, features] -> neuron activations [I, batch, neurons]."""
        return torch.relu(torch.bmm(x, self.W_in.transpose(1, 2)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(torch.baddbmm(self.b[:, None, :], self.neurons(x), self.W_out.transpose(1, 2)))


def sample_signed(probabilities: torch.Tensor, batch: int, n_features: int, generator: torch.Generator,
                  shared: bool = False) -> torch.Tensor:
    """U[-1, 1] with probability p (per instance, probabilities [I]), else 0: [I, batch, n_features]."""
    lead = 1 if shared else probabilities.shape[0]
    values = torch.rand(lead, batch, n_features, generator=generator) * 2 - 1
    present = torch.rand(lead, batch, n_features, generator=generator) < probabilities[:, None, None]
    return values * present


@dataclasses.dataclass
class AbsResult(Result):
    """feature_error: [I, n] squared error over that of the best constant guess (Var |x_i|);
    features_computed: [I] features with feature_error < computed_threshold;
    capacity: [I] Σ_i max(0, 1 - feature_error_i), features' worth of |x| computed, partial ones
        counted partly (a feature served by one neuron, ReLU(x) or ReLU(-x), counts about half);
    neuron_features: [I, neurons] how many features each neuron reads strongly; W_in: [I, m, n]."""

    _json_exclude: ClassVar[tuple[str, ...]] = ()

    n_features: int
    n_neurons: int
    feature_probability: torch.Tensor
    feature_error: torch.Tensor
    features_computed: list[int]
    capacity: list[float]
    neuron_features: torch.Tensor
    polysemantic_neurons: list[int]
    W_in: torch.Tensor
    loss: torch.Tensor

    def figure(self):
        from mechscope.toy.figures import computation_figure

        return computation_figure(self)


def train_abs(config: AbsConfig | None = None, *, show_progress: bool | None = None) -> AbsResult:
    config = config or AbsConfig()
    generator = torch.Generator().manual_seed(config.seed)
    probs = config.probabilities()
    n, m = config.n_features, config.n_neurons
    importance = (config.importance_decay ** torch.arange(n, dtype=torch.float32))
    model = AbsModel(config.n_instances, n, m, generator)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
    for step in progress(range(config.steps), desc="abs-value toy", enabled=show_progress):
        for group in optimizer.param_groups:
            group["lr"] = config.lr * 0.5 * (1.0 + math.cos(math.pi * step / config.steps))
        x = sample_signed(probs, config.batch_size, n, generator)
        loss = ((model(x) - x.abs()) ** 2 * importance).mean(dim=(1, 2)).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        x = sample_signed(probs, config.eval_samples, n, torch.Generator().manual_seed(config.seed + 1), shared=True)
        err = ((model(x) - x.abs()) ** 2).mean(dim=1)                 # [I, n]
        base = x.abs().var(dim=1).clamp_min(1e-12)                    # predicting the best constant
        feature_error = err / base
        loss = (err * importance).mean(dim=1)
        W_in = model.W_in.detach().clone()
    computed = (feature_error < config.computed_threshold).sum(dim=1)
    strong = W_in.abs() >= 0.5 * W_in.abs().amax(dim=2, keepdim=True).clamp_min(1e-6)
    strong &= W_in.abs() >= 0.1
    neuron_features = strong.sum(dim=2)                               # [I, m]
    return AbsResult(n_features=n, n_neurons=m, feature_probability=probs, feature_error=feature_error,
                     features_computed=computed.tolist(),
                     capacity=(1 - feature_error).clamp_min(0).sum(dim=1).tolist(),
                     neuron_features=neuron_features, polysemantic_neurons=(neuron_features >= 2).sum(1).tolist(),
                     W_in=W_in, loss=loss)
