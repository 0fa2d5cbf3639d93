"""Small curve fits used by the geometry analyses: PCA, exponential growth, sinusoids, rank correlation.

Pure numpy, no model: each is tested against a closed form or a planted ground truth.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from scipy.stats import spearmanr


@dataclasses.dataclass
class PCA:
    """Principal components of a set of rows.

    components: [n_components d] unit directions, ordered by variance.
    scores: [n_rows n_components] coordinates of the (centred) rows along them.
    explained: [n_components] share of the total variance carried by each component.
    mean: [d] the mean row that was subtracted.
    """

    components: np.ndarray
    scores: np.ndarray
    explained: np.ndarray
    mean: np.ndarray


def pca(rows: np.ndarray, n_components: int | None = None) -> PCA:
    """PCA by SVD of the centred rows [n d].

    rows: [n d]. Each component's sign is fixed so that its score correlates positively with the row index;
    "PC1 against position" then reads the same on every run and every model.
    """
    x = np.asarray(rows, dtype=np.float64)
    mean = x.mean(axis=0)
    centred = x - mean
    # torch's SVD respects torch.set_num_threads; numpy's BLAS can spin dozens of threads on a shared box
    u, s, vt = (t.numpy() for t in torch.linalg.svd(torch.from_numpy(centred), full_matrices=False))
    var = s**2
    total = var.sum()
    k = len(s) if n_components is None else min(n_components, len(s))
    scores = u[:, :k] * s[:k]
    comps = vt[:k]
    index = np.arange(len(x)) - (len(x) - 1) / 2
    for i in range(k):
        if float(scores[:, i] @ index) < 0:
            scores[:, i] *= -1
            comps[i] *= -1
    explained = var[:k] / total if total > 0 else np.zeros(k)
    return PCA(components=comps, scores=scores, explained=explained, mean=mean)


@dataclasses.dataclass
class ExponentialFit:
    """y ≈ scale * factor**x, fitted as a line through (x, log y).

    factor: growth per unit of x (> 1 grows, < 1 shrinks).
    r2: R² of the line in log space.
    """

    factor: float
    scale: float
    r2: float


def exponential_fit(x: np.ndarray, y: np.ndarray) -> ExponentialFit:
    """Least-squares line through (x, log y); y must be positive. Needs at least two points."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(x) < 2:
        raise ValueError("an exponential fit needs at least two points")
    if np.any(y <= 0):
        raise ValueError("an exponential fit needs positive values")
    log_y = np.log(y)
    slope, intercept = np.polyfit(x, log_y, 1)
    return ExponentialFit(factor=float(np.exp(slope)), scale=float(np.exp(intercept)),
                          r2=r_squared(log_y, slope * x + intercept))


def r_squared(y: np.ndarray, y_hat: np.ndarray) -> float:
    """1 - SS_res / SS_tot; 1.0 when y is constant and matched exactly."""
    y = np.asarray(y, dtype=np.float64)
    ss_res = float(((y - y_hat) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    if ss_tot == 0:
        return 1.0 if ss_res == 0 else 0.0
    return 1.0 - ss_res / ss_tot


@dataclasses.dataclass
class SinusoidFit:
    """Each column of y ≈ a_j sin(ω x) + b_j cos(ω x) + c_j with one shared angular frequency ω.

    period: 2π/ω in units of x. r2: [n_columns] R² per column. phases: [n_columns] phase
    (radians) of each column's sinusoid; a helix has two columns a quarter turn apart.
    """

    period: float
    r2: list[float]
    phases: list[float]
    amplitudes: list[float]

    @property
    def phase_gap(self) -> float:
        """|phase difference| of the first two columns, folded into [0, π]."""
        if len(self.phases) < 2:
            return float("nan")
        gap = abs(self.phases[0] - self.phases[1]) % (2 * np.pi)
        return float(min(gap, 2 * np.pi - gap))


def sinusoid_fit(x: np.ndarray, y: np.ndarray, n_frequencies: int = 400) -> SinusoidFit:
    """Fit sinusoids of a shared frequency to the columns of y [n k] against x [n].

    Grid search over ω (periods from 2 sample spacings up to 4× the span of x, log-spaced); for each ω
    the amplitudes and offsets are linear least squares; the ω with the best summed R² wins.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    span = float(x.max() - x.min())
    step = float(np.median(np.diff(np.sort(x)))) if len(x) > 1 else 1.0
    periods = np.geomspace(2 * step, 4 * max(span, step), n_frequencies)
    best = None
    for period in periods:
        omega = 2 * np.pi / period
        basis = np.stack([np.sin(omega * x), np.cos(omega * x), np.ones_like(x)], axis=1)
        coef, *_ = np.linalg.lstsq(basis, y, rcond=None)
        fitted = basis @ coef
        r2s = [r_squared(y[:, j], fitted[:, j]) for j in range(y.shape[1])]
        score = sum(r2s)
        if best is None or score > best[0]:
            best = (score, period, r2s, coef)
    _, period, r2s, coef = best
    phases = [float(np.arctan2(coef[1, j], coef[0, j])) for j in range(y.shape[1])]
    amplitudes = [float(np.hypot(coef[0, j], coef[1, j])) for j in range(y.shape[1])]
    return SinusoidFit(period=float(period), r2=[float(r) for r in r2s], phases=phases,
                       amplitudes=amplitudes)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation; 0.0 when either side is constant."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0
    return float(spearmanr(x, y).statistic)
