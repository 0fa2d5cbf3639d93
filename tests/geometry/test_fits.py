"""The pure-math fits against planted ground truths and closed forms."""

import numpy as np
import pytest

from mechscope.geometry.fits import exponential_fit, pca, r_squared, sinusoid_fit, spearman
from mechscope.geometry.probes import probe_accuracy


def _helix(n=128, d=48, period=32.0, seed=0):
    rng = np.random.default_rng(seed)
    p = np.arange(n, dtype=float)
    wave = np.stack([np.cos(2 * np.pi * p / period), np.sin(2 * np.pi * p / period)], axis=1)
    wave -= wave.mean(axis=0)
    late = p - p.mean()
    late -= wave @ np.linalg.lstsq(wave, late, rcond=None)[0]   # monotone, uncorrelated with the wave
    latent = np.concatenate([3.0 * late[:, None] / late.std(), wave], axis=1)
    basis, _ = np.linalg.qr(rng.normal(size=(d, 3)))
    return latent @ basis.T + 0.01 * rng.normal(size=(n, d)), period


def test_pca_recovers_a_planted_helix():
    rows, period = _helix()
    fit = pca(rows, n_components=5)
    assert fit.explained[:3].sum() > 0.99
    assert spearman(np.arange(len(rows)), fit.scores[:, 0]) > 0.95
    sin = sinusoid_fit(np.arange(len(rows)), fit.scores[:, 1:3])
    assert min(sin.r2) > 0.98
    assert sin.period == pytest.approx(period, rel=0.03)
    assert sin.phase_gap == pytest.approx(np.pi / 2, abs=0.1)


def test_pca_explained_variance_matches_eigenvalues():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 6)) * np.array([5, 3, 1, 1, 0.5, 0.1])
    fit = pca(x)
    eig = np.sort(np.linalg.eigvalsh(np.cov(x.T)))[::-1]
    np.testing.assert_allclose(fit.explained, eig / eig.sum(), rtol=1e-9)
    np.testing.assert_allclose(fit.scores @ fit.components + fit.mean, x, atol=1e-9)


def test_pca_on_noise_is_not_low_dimensional():
    x = np.random.default_rng(2).normal(size=(128, 64))
    assert pca(x).explained[:3].sum() < 0.2


def test_exponential_fit_closed_form():
    x = np.arange(6)
    fit = exponential_fit(x, 2.0 * 1.3**x)
    assert fit.factor == pytest.approx(1.3)
    assert fit.scale == pytest.approx(2.0)
    assert fit.r2 == pytest.approx(1.0)
    noisy = exponential_fit(x, np.array([1, 5, 2, 6, 1, 3.0]))
    assert noisy.r2 < 0.5
    with pytest.raises(ValueError):
        exponential_fit(x, -np.ones(6))


def test_r_squared_and_spearman():
    y = np.array([1.0, 2, 3, 4])
    assert r_squared(y, y) == 1.0
    assert r_squared(y, np.full(4, y.mean())) == 0.0
    assert spearman(y, y**3) == pytest.approx(1.0)
    assert spearman(y, -y) == pytest.approx(-1.0)
    assert spearman(y, np.ones(4)) == 0.0


def test_probe_finds_a_planted_direction_and_control_is_at_chance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 32))
    labels = x[:, 3] + 0.3 * rng.normal(size=2000) > 0.5
    score = probe_accuracy(x, labels, seed=0)
    assert score.accuracy > 0.9
    assert abs(score.control_accuracy - 0.5) < 0.08
    noise = probe_accuracy(x, rng.random(2000) > 0.5, seed=0)
    assert noise.accuracy < 0.6
    with pytest.raises(ValueError):
        probe_accuracy(x[:20], np.arange(20) < 3)
