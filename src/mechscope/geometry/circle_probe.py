"""The circle probe of Engels et al. 2024: do activations of a cyclic variable lie on a circle?

Given activations x_i [n d] of examples labelled α_i ∈ {0..P-1} (day of the week P = 7, month P = 12):

1. PCA of the activations to k dimensions (centred; k = 5 by default, as in the paper; components that
   carry no variance, share ≤ 1e-9, are dropped);
2. least squares W [k 2] from the PCA scores onto the targets (cos 2πα/P, sin 2πα/P);
3. R² of each target column (1 - SS_res/SS_tot), averaged over the two: the circle-fit quality;
4. the angle atan2(ŷ_sin, ŷ_cos) of each prediction; the classes sorted by the mean angle of their
   held-out predictions (step 5) give the angular order, compared with the calendar order (exact when it
   is 0, 1, ..., P-1 up to rotation; in sample, any P points would come out in order);
5. the leave-one-class-out R²: each class predicted by a PCA and probe fitted on the other classes only, and
6. the shuffled-label control: the same fit with the labels permuted (mean R² over shuffles), which says
   how much R² the probe gets from its capacity alone.

W = QR (thin QR) gives an orthonormal basis Q of the circle plane inside the PCA space; a point t on
the target circle sits at Q-coordinates t R⁻¹. `circle_plane_edit` uses this to move an activation to
another point of the circle (see `mechscope.geometry.circle`).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from mechscope.errors import InputError
from mechscope.geometry.fits import pca, r_squared


def circle_targets(labels: np.ndarray, period: int) -> np.ndarray:
    """[n 2] (cos 2πα/P, sin 2πα/P) for integer labels α."""
    angle = 2 * np.pi * np.asarray(labels, dtype=np.float64) / period
    return np.stack([np.cos(angle), np.sin(angle)], axis=1)


def check_labels(labels, period: int) -> np.ndarray:
    """Integer labels [n] that cover exactly 0..period-1; InputError saying what is wrong otherwise."""
    labels = np.asarray(labels)
    if period < 3:
        raise InputError(f"a circle needs a period of at least 3, got {period}")
    if labels.ndim != 1 or len(labels) == 0:
        raise InputError("labels must be a non-empty 1-D sequence of integers")
    if not np.issubdtype(labels.dtype, np.integer):
        if not np.all(np.equal(np.mod(labels, 1), 0)):
            raise InputError("labels must be integers 0..period-1 (e.g. 0 = Monday ... 6 = Sunday)")
        labels = labels.astype(np.int64)
    present = set(labels.tolist())
    if min(present) < 0 or max(present) >= period or len(present) != period:
        raise InputError(
            f"the period ({period}) does not match the labels: they take the values {sorted(present)[:16]}, "
            f"but a circle of period {period} needs every value 0..{period - 1}; pass period="
            f"{max(present) + 1} or relabel")
    return labels


def _lstsq(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares x @ w ≈ y in float64 (torch: respects the thread setting)."""
    return torch.linalg.lstsq(torch.from_numpy(x), torch.from_numpy(y), driver="gelsd").solution.numpy()


def _wrap(a: np.ndarray) -> np.ndarray:
    return (a + np.pi) % (2 * np.pi) - np.pi


@dataclasses.dataclass
class CircleFit:
    """A fitted circle probe.

    r2: mean R² of the cos and sin targets; r2_cos, r2_sin apart. control_r2: mean R² with shuffled labels.
    angles: [n] predicted angle (radians) per example (in sample); class_angles: [P] circular mean angle
    per class of the held-out predictions.
    order: the classes sorted by class angle, starting at class 0; order_exact: it is 0, 1, ..., P-1.
    angular_error: mean |predicted - true angle| (radians, wrapped). predictions: [n 2] probe outputs.
    components: [k d] PCA directions; mean: [d]; weights: [k 2] the probe on the PCA scores;
    q: [k 2], r: [2 2] its thin QR; scores: [n k] PCA coordinates.
    """

    period: int
    n_components: int
    r2: float
    r2_cos: float
    r2_sin: float
    control_r2: float
    heldout_r2: float
    angles: np.ndarray
    class_angles: np.ndarray
    order: list[int]
    order_exact: bool
    angular_error: float
    predictions: np.ndarray
    components: np.ndarray
    mean: np.ndarray
    weights: np.ndarray
    q: np.ndarray
    r: np.ndarray
    scores: np.ndarray
    explained: np.ndarray

    @property
    def degenerate(self) -> bool:
        """The probe does not span a plane (e.g. constant activations): there is no circle to move along."""
        sv = np.linalg.svd(self.r, compute_uv=False)
        return bool(sv[-1] <= 1e-9 * max(sv[0], 1e-300))

    def inverse_r(self) -> np.ndarray:
        if self.degenerate:
            raise InputError("the circle probe is degenerate (its two outputs do not span a plane, e.g. the "
                             "activations are constant): there is no circle plane to move along at this site")
        return np.linalg.inv(self.r)

    def circle_point(self, label: int) -> np.ndarray:
        """[d] offset from the mean activation where the probe reads `label` exactly (in the circle plane)."""
        t = circle_targets(np.array([label]), self.period)[0]
        return (t @ self.inverse_r()) @ self.q.T @ self.components

    def plane_basis(self) -> np.ndarray:
        """[2 d] orthonormal basis of the circle plane in activation space."""
        return self.q.T @ self.components


def _fit_r2(scores: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[float]]:
    w = _lstsq(scores, targets)
    pred = scores @ w
    return w, pred, [r_squared(targets[:, j], pred[:, j]) for j in range(2)]


def fit_circle(acts, labels, period: int, *, n_components: int = 5, n_shuffles: int = 5,
               seed: int = 0) -> CircleFit:
    """Fit the circle probe to activations `acts` [n d] with integer `labels` [n] of period `period`.

    Raises InputError when the labels do not cover 0..period-1 or there are fewer examples than PCA components.
    """
    labels = check_labels(labels, period)
    x = np.asarray(acts, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != len(labels):
        raise InputError(f"acts must be [n d] with n = {len(labels)} labels; got shape {tuple(x.shape)}")
    k = min(n_components, x.shape[1], x.shape[0] - 1)
    if k < 2:
        raise InputError(f"a circle probe needs at least 2 PCA components; {x.shape[0]} examples of "
                         f"dimension {x.shape[1]} allow {k}")
    p = pca(x, k)
    keep = int((p.explained > 1e-9).sum())   # components without variance carry only rounding noise: drop them
    if keep < 2:
        p = dataclasses.replace(p, components=p.components[:2], scores=p.scores[:, :2], explained=p.explained[:2])
    elif keep < k:
        k = keep
        p = dataclasses.replace(p, components=p.components[:k], scores=p.scores[:, :k], explained=p.explained[:k])
    targets = circle_targets(labels, period)
    w, pred, (r2_cos, r2_sin) = _fit_r2(p.scores, targets)
    rng = np.random.default_rng(seed)
    controls = [float(np.mean(_fit_r2(p.scores, targets[rng.permutation(len(labels))])[2]))
                for _ in range(n_shuffles)]
    heldout = np.zeros_like(targets)
    offsets = np.zeros_like(targets)
    for c in range(period):
        # PCA, centring and probe (with an intercept) from the other classes only: centring over all classes
        # would leak the held-out class (centred class means sum to zero, and so do the circle targets)
        train = labels != c
        p_c = pca(x[train], k)
        design = np.hstack([p_c.scores, np.ones((int(train.sum()), 1))])
        w_c = _lstsq(design, targets[train])
        test = (x[~train] - p_c.mean) @ p_c.components.T
        heldout[~train] = np.hstack([test, np.ones((len(test), 1))]) @ w_c
        # the angle of the held-out class comes from its offset from the training mean, without the intercept:
        # the intercept is the training classes' mean target, -t_c/(P-1), which points exactly away from the
        # held-out class and would put any uninformative probe's angles in calendar order (rotated by π)
        offsets[~train] = test @ w_c[:-1]
    heldout_r2 = 1 - float(((targets - heldout) ** 2).sum() / ((targets - targets.mean(0)) ** 2).sum())
    angles = np.arctan2(pred[:, 1], pred[:, 0])
    heldout_angles = np.arctan2(offsets[:, 1], offsets[:, 0])
    class_angles = np.array([np.angle(np.exp(1j * heldout_angles[labels == c]).mean()) for c in range(period)])
    relative = np.mod(class_angles - class_angles[0], 2 * np.pi)
    order = [int(c) for c in np.argsort(relative, kind="stable")]
    distinct = bool(np.all(np.diff(np.sort(relative)) > 1e-6))   # tied angles (e.g. constant input) order nothing
    true = 2 * np.pi * labels / period
    q, r = np.linalg.qr(w)
    return CircleFit(
        period=period, n_components=k, r2=float((r2_cos + r2_sin) / 2), r2_cos=float(r2_cos), r2_sin=float(r2_sin),
        control_r2=float(np.mean(controls)) if controls else float("nan"), heldout_r2=heldout_r2, angles=angles,
        class_angles=class_angles, order=order, order_exact=distinct and order == list(range(period)),
        angular_error=float(np.mean(np.abs(_wrap(angles - true)))), predictions=pred,
        components=p.components, mean=p.mean, weights=w, q=q, r=r, scores=p.scores, explained=p.explained)


def circle_plane_edit(acts, fit: CircleFit, new_labels) -> np.ndarray:
    """[n d] the activations moved, inside the circle plane only, to the circle points of `new_labels`.

    x' = x - P Q Qᵀ Pᵀ (x - μ) + P Q (t R⁻¹)ᵀ, with P the PCA directions [d k],
    Q R the probe and t the target point; the probe then reads exactly t on x', and every direction
    orthogonal to the circle plane keeps its value.
    """
    x = np.asarray(acts, dtype=np.float64)
    basis = fit.plane_basis()                          # [2 d]
    coords = (x - fit.mean) @ basis.T                  # [n 2]
    targets = circle_targets(np.asarray(new_labels), fit.period) @ fit.inverse_r()   # [n 2] in Q coords
    return x + (targets - coords) @ basis


def engels_replacement(fit: CircleFit, new_labels) -> np.ndarray:
    """[n d] Engels et al.'s patch: the mean activation with its circle-plane part replaced by the target
    point, x' = μ - μ P Q Qᵀ Pᵀ + t R⁻¹ Qᵀ Pᵀ (the uncentred plane coordinates set to t R⁻¹, as in
    their `patch_in_subspace_activations`)."""
    basis = fit.plane_basis()
    targets = circle_targets(np.asarray(new_labels), fit.period) @ fit.inverse_r()
    mean = fit.mean[None, :]
    return mean - (mean @ basis.T) @ basis + targets @ basis
