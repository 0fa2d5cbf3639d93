"""The residual-stream layout of a compiled organism: named slots of logical coordinates.

A compiled organism is written in *logical* coordinates z (one coordinate per feature: a token's
one-hot, a position code, a head's output slot ...). The residual stream holds x = Q z, where Q
([d_model, d_model - 1]) is the Householder basis of the subspace orthogonal to the all-ones vector:
every written direction has mean zero, so LayerNorm's mean subtraction leaves it unchanged.

Every position carries a large constant ``C`` in logical coordinate 0 (``const``). LayerNorm then
divides by |z| / sqrt(d_model) ~ C / sqrt(d_model) whatever else is written, and with the LayerNorm
gain set to ``C / sqrt(d_model)`` it acts as the identity on logical coordinates up to a factor
C / |z| = 1 - O(|content|^2 / C^2) (1e-4 for C = 100 and content of norm 1.4).

    layout = Layout(d_model=192)
    layout.add("token", 48)          # slot of 48 logical coordinates
    layout.index("token", 5)         # logical coordinate of token 5
    W = layout.basis @ W_logical     # [d_model, k]: reads logical coordinates out of the residual
"""

from __future__ import annotations

import dataclasses
import math

import torch

from mechscope.errors import InputError

CONST = 100.0  # the constant every position carries in logical coordinate 0


@dataclasses.dataclass
class Layout:
    """Named slots of logical coordinates; coordinate 0 is `const`."""

    d_model: int
    slots: dict[str, tuple[int, int]] = dataclasses.field(default_factory=lambda: {"const": (0, 1)})

    @property
    def n_logical(self) -> int:
        return self.d_model - 1

    @property
    def used(self) -> int:
        return max(start + size for start, size in self.slots.values())

    def add(self, name: str, size: int) -> int:
        """Reserve `size` coordinates under `name`; returns the first one."""
        if name in self.slots:
            raise InputError(f"slot {name!r} is already in the layout")
        start = self.used
        if start + size > self.n_logical:
            raise InputError(f"slot {name!r} ({size}) does not fit: {start} of {self.n_logical} logical "
                             "coordinates used; raise d_model")
        self.slots[name] = (start, size)
        return start

    def index(self, name: str, i: int = 0) -> int:
        start, size = self.slots[name]
        if not 0 <= i < size:
            raise InputError(f"slot {name!r} has {size} coordinates, asked for {i}")
        return start + i

    def span(self, name: str) -> slice:
        start, size = self.slots[name]
        return slice(start, start + size)

    @property
    def basis(self) -> torch.Tensor:
        """Q: [d_model, n_logical] float64, orthonormal columns, each orthogonal to the all-ones vector."""
        d = self.d_model
        v = torch.full((d,), 1.0 / math.sqrt(d), dtype=torch.float64)
        v[0] -= 1.0
        householder = torch.eye(d, dtype=torch.float64) - 2.0 * torch.outer(v, v) / float(v @ v)
        return householder[:, 1:]            # column 0 maps to the all-ones direction: dropped

    def to_dict(self) -> dict:
        """{slot: [first logical coordinate, size]} plus how logical coordinates map to the residual."""
        return {"d_model": self.d_model, "const": CONST,
                "basis": "Householder: x = Q z, Q = (I - 2 v v^T / v.v)[:, 1:], v = ones / sqrt(d_model) - e_0",
                "slots": {k: list(v) for k, v in self.slots.items()}}

    def direction(self, name: str, i: int = 0) -> torch.Tensor:
        """The residual-stream direction of one logical coordinate: [d_model] float64, unit norm."""
        return self.basis[:, self.index(name, i)]
