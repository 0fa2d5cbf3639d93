"""The toy model x' = ReLU(WᵀWx + b), many independent instances stacked along a first axis.

W is [n_instances, n_hidden, n_features]: column W[k, :, i] is where instance k writes feature i
(the paper's W_i). Everything is instance-major: inputs x [n_instances, batch, n_features].
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mechscope.toy.config import Activation, ToyConfig


class ToyModel(nn.Module):
    """n_instances independent toy models evaluated with batched matmuls."""

    def __init__(self, n_instances: int, n_features: int, n_hidden: int, activation: Activation = "relu",
                 generator: torch.Generator | None = None):
        super().__init__()
        self.activation = activation
        std = math.sqrt(2.0 / (n_features + n_hidden))  # Xavier normal, as in the paper's notebook
        self.W = nn.Parameter(torch.randn(n_instances, n_hidden, n_features, generator=generator) * std)
        self.b = nn.Parameter(torch.zeros(n_instances, n_features))

    @classmethod
    def from_config(cls, config: ToyConfig, generator: torch.Generator | None = None) -> ToyModel:
        return cls(config.n_instances, config.n_features, config.n_hidden, config.activation, generator)

    @property
    def n_instances(self) -> int:
        return self.W.shape[0]

    @property
    def n_hidden(self) -> int:
        return self.W.shape[1]

    @property
    def n_features(self) -> int:
        return self.W.shape[2]

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """h = Wx: x [n_instances, batch, n_features] -> [n_instances, batch, n_hidden]."""
        return torch.bmm(x, self.W.transpose(1, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x' = act(WᵀWx + b): [n_instances, batch, n_features] -> same shape."""
        pre = torch.baddbmm(self.b[:, None, :], self.hidden(x), self.W)
        return torch.relu(pre) if self.activation == "relu" else pre

    def loss(self, x: torch.Tensor, importance: torch.Tensor) -> torch.Tensor:
        """Importance-weighted squared error per instance, mean over batch and features.

        x [n_instances, batch, n_features], importance [n_instances, n_features] -> [n_instances].
        """
        err = (self(x) - x) ** 2 * importance[:, None, :]
        return err.mean(dim=(1, 2))
