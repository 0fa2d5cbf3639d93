"""Engels et al. 2024's two tests of whether a 2-d feature is irreducible (Section 3 of the paper).

A feature f (points x_i in a plane) is *reducible* when it is a mixture of lower-dimensional features
(most points lie on a line: a high ε-mixture index) or when it separates into independent 1-d parts
(some rotation makes its coordinates independent: a low separability index). A circle is neither.

- **ε-mixture index** M_ε(f) = max over a direction a and offset b of P(|z| < ε), z = (a·x + b) / rms(a·x + b):
  the largest share of points within ε (in units of the projection's RMS) of one hyperplane. Optimised as
  in the paper by gradient ascent on a sigmoid relaxation mean σ((ε - |z|)/T) with the temperature T
  annealed linearly from 1 to 1/n_steps (learning rate 0.1, b starting at 0, a at a seeded Gaussian draw).
  `mixture_index` returns that relaxed value at the last step (the paper's number) and the hard share.
- **separability index** S(f) = min over rotations θ of the mutual information I(x'_1; x'_2) of the rotated
  coordinates, estimated from a 2n × 2n histogram on [-bound, bound]² (points outside clipped to the edge
  bins, 1e-4 added to joint and product in the log), swept over `angular_res` angles in [0, 2π). The points
  are centred and divided by their mean square first, as in the authors' code. Reported in bits.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from mechscope.errors import InputError


@dataclasses.dataclass
class MixtureIndex:
    """index: relaxed P(|z| < ε) at the final temperature (the paper's M_ε); hard: the exact share with |z| < ε.
    direction: [d] the hyperplane normal a; offset: b."""

    index: float
    hard: float
    direction: np.ndarray
    offset: float


def _as_points(x) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x), dtype=torch.float32) if not torch.is_tensor(x) else x.float()
    if t.ndim != 2 or t.shape[0] < 2:
        raise InputError(f"points must be [n d] with n ≥ 2; got shape {tuple(t.shape)}")
    return t


def mixture_index(points, epsilon: float = 0.1, *, n_steps: int = 10_000, lr: float = 0.1, seed: int = 0,
                  init: torch.Tensor | None = None) -> MixtureIndex:
    """M_ε of `points` [n d]; `init` ([d]) overrides the seeded starting direction."""
    x = _as_points(points)
    if init is None:
        init = torch.randn(x.shape[1], generator=torch.Generator().manual_seed(seed))
    a = init.clone().float().requires_grad_(True)
    b = torch.zeros((), requires_grad=True)
    value = torch.tensor(float("nan"))
    for i in range(n_steps):
        temperature = 1 - i / n_steps
        proj = x @ a + b
        z = proj / torch.sqrt(torch.mean(proj**2))
        value = torch.mean(torch.sigmoid((epsilon - torch.abs(z)) / temperature))
        value.backward()
        with torch.no_grad():
            a += lr * a.grad
            b += lr * b.grad
        a.grad.zero_()
        b.grad.zero_()
    with torch.no_grad():
        proj = x @ a + b
        z = proj / torch.sqrt(torch.mean(proj**2))
        hard = float((z.abs() < epsilon).float().mean())
    return MixtureIndex(index=float(value.detach()), hard=hard, direction=a.detach().numpy(), offset=float(b.detach()))


def binned_mutual_information(xy: torch.Tensor, n_bins: int = 20, bound: float = 3.0) -> torch.Tensor:
    """I(x; y) in nats of the 2-d points `xy` [n 2] from a (2·n_bins)² histogram over [-bound, bound]²."""
    side = 2 * n_bins
    cells = torch.clip((xy + bound) / bound * n_bins, 0, side - 0.1).floor().long()
    counts = torch.zeros(side * side, dtype=xy.dtype)
    counts.scatter_add_(0, cells[:, 0] * side + cells[:, 1], torch.ones(len(xy), dtype=xy.dtype))
    joint = counts.reshape(side, side) / counts.sum()
    product = joint.sum(1)[:, None] * joint.sum(0)[None, :]
    return torch.sum(joint * torch.log((joint + 1e-4) / (product + 1e-4)))


@dataclasses.dataclass
class SeparabilityIndex:
    """index: min over angles of the mutual information (bits); angle: the minimising rotation (radians);
    curve: [angular_res] mutual information (bits) at each angle."""

    index: float
    angle: float
    curve: np.ndarray


def separability_index(points, *, n_bins: int = 20, bound: float = 3.0, angular_res: int = 1000
                       ) -> SeparabilityIndex:
    """S(f) of 2-d `points` [n 2]."""
    x = _as_points(points)
    if x.shape[1] != 2:
        raise InputError(f"the separability index is defined for 2-d features; got {x.shape[1]} dimensions "
                         "(project onto the feature's plane first, e.g. its top 2 principal components)")
    x = x - x.mean(0)
    if not float(torch.mean(x**2)) > 0:
        raise InputError("the points have no spread (all equal): their separability is undefined")
    x = x / torch.mean(x**2)
    turn = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=x.dtype)
    eye = torch.eye(2, dtype=x.dtype)
    curve = []
    for i in range(angular_res):
        angle = torch.tensor(2 * math.pi * i / angular_res)
        rotation = torch.cos(angle).to(x.dtype) * eye + torch.sin(angle).to(x.dtype) * turn
        curve.append(float(binned_mutual_information(x @ rotation, n_bins, bound)))
    curve_bits = np.array(curve) / math.log(2)
    best = int(np.argmin(curve_bits))
    return SeparabilityIndex(index=float(curve_bits[best]), angle=2 * math.pi * best / angular_res,
                             curve=curve_bits)


def engels_synthetic(kind: str, n: int = 4096, seed: int = 2) -> torch.Tensor:
    """[n 2] the paper's four synthetic features (Fig. 2): "gaussian" (a correlated Gaussian), "gaussians"
    (40% 2-d Gaussian, 30% and 30% on two random lines), "circle" (unit circle), "lattice" (a skewed grid).
    Drawn from torch's global generator seeded with `seed`, in the authors' order of draws."""
    kinds = ("gaussian", "gaussians", "circle", "lattice")
    if kind not in kinds:
        raise InputError(f"unknown synthetic feature {kind!r}: use one of {', '.join(kinds)}")
    torch.manual_seed(seed)
    np.random.seed(seed)
    mat = torch.randn([2, 2])
    line1, off1, line2, off2 = (torch.randn([2]) for _ in range(4))
    if kind == "gaussian":
        return torch.tensordot(torch.randn([n, 2]), mat, dims=1)
    if kind == "gaussians":
        a = torch.randn([n, 2])
        b = torch.randn([n, 1]) * line1 + off1
        c = torch.randn([n, 1]) * line2 + off2
        pick = torch.rand([n, 1])
        first = (pick < 0.4).float()
        second = (pick < 0.7).float() - first
        third = 1 - first - second
        return a * first + b * second + c * third
    if kind == "circle":
        x = torch.randn([n, 2])
        return x / x.norm(dim=1, keepdim=True)
    x = torch.randn([n, 2])
    return torch.tensordot((3 * x).int().float(), mat, dims=1)
