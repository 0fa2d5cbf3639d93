"""The circle probe against a planted circle, and the circle-plane edit against its definition."""

from __future__ import annotations

import numpy as np
import pytest

from mechscope.errors import InputError
from mechscope.geometry.circle_probe import circle_plane_edit, circle_targets, engels_replacement, fit_circle


def planted_circle(period=7, per_class=6, d=64, noise=0.05, seed=0):
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(d, 2)))
    labels = np.repeat(np.arange(period), per_class)
    acts = circle_targets(labels, period) @ basis.T * 3.0 + noise * rng.normal(size=(len(labels), d)) + 5.0
    return acts, labels


@pytest.mark.parametrize("period", [7, 12])
def test_planted_circle_in_64d_noise_gives_r2_and_exact_order(period):
    acts, labels = planted_circle(period)
    fit = fit_circle(acts, labels, period)
    assert fit.r2 >= 0.99 and fit.heldout_r2 >= 0.99
    assert fit.order_exact and fit.order == list(range(period))
    assert fit.control_r2 < 0.5
    assert fit.angular_error < 0.05


def test_random_points_fit_in_sample_but_not_held_out():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(7, 64))
    labels = np.repeat(np.arange(7), 5)
    fit = fit_circle(centres[labels] + 0.01 * rng.normal(size=(35, 64)), labels, 7)
    assert fit.r2 > 0.9          # any 7 points fit a circle in sample with 5 components ...
    assert fit.heldout_r2 < 0.3  # ... but do not predict a day they have not seen


def test_plane_edit_moves_the_probe_reading_exactly_and_keeps_the_rest():
    acts, labels = planted_circle(noise=0.3, seed=2)
    fit = fit_circle(acts, labels, 7)
    new = (labels + 3) % 7
    moved = circle_plane_edit(acts, fit, new)
    reading = ((moved - fit.mean) @ fit.components.T) @ fit.weights
    np.testing.assert_allclose(reading, circle_targets(new, 7), atol=1e-9)
    basis = fit.plane_basis()
    rest = np.eye(acts.shape[1]) - basis.T @ basis
    np.testing.assert_allclose(moved @ rest, acts @ rest, atol=1e-9)
    # Engels' patch: the mean outside the plane, uncentred plane coordinates t R⁻¹
    patched = engels_replacement(fit, new)
    np.testing.assert_allclose(patched @ basis.T, circle_targets(new, 7) @ np.linalg.inv(fit.r), atol=1e-9)
    np.testing.assert_allclose(patched @ rest, np.broadcast_to(fit.mean @ rest, patched.shape), atol=1e-9)


def test_period_that_does_not_match_the_labels_is_an_error():
    acts, labels = planted_circle(7)
    with pytest.raises(InputError, match="does not match the labels"):
        fit_circle(acts, labels, 12)
    with pytest.raises(InputError, match="does not match the labels"):
        fit_circle(acts, labels, 5)
    with pytest.raises(InputError, match="labels"):
        fit_circle(acts[:10], labels, 7)


def test_an_uninformative_probe_does_not_come_out_in_calendar_order():
    # the held-out intercept alone (the other classes' mean target, -t_c/(P-1)) would put every class
    # exactly opposite its own point, i.e. in calendar order; the order is read without it
    rng = np.random.default_rng(4)
    labels = np.repeat(np.arange(7), 6)
    noise = 1e-3 * rng.normal(size=(42, 64))
    fit = fit_circle(noise + 3.0, labels, 7)
    assert fit.heldout_r2 < 0 and not fit.order_exact
    constant = fit_circle(np.ones((42, 8)), labels, 7)
    assert constant.degenerate and not constant.order_exact and constant.r2 == 0.0
