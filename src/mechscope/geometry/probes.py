"""Linear probes on fixed vectors, scored against a shuffled-label control.

A probe is a ridge-regularised least-squares classifier (closed form: deterministic and fast);
classes are balanced by subsampling so chance is 50%, and the control refits the same probe on
permuted labels, which tells how much accuracy the probe gets from capacity alone.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch


@dataclasses.dataclass
class ProbeScore:
    """Held-out accuracy of a probe and of the same probe trained on shuffled labels.

    n_examples: examples used after balancing (half of each class).
    """

    accuracy: float
    control_accuracy: float
    train_accuracy: float
    n_examples: int

    @property
    def gain(self) -> float:
        return self.accuracy - self.control_accuracy


def balanced_indices(labels: np.ndarray, max_per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Indices with the same number of positives and negatives (at most max_per_class each)."""
    labels = np.asarray(labels, dtype=bool)
    pos, neg = np.flatnonzero(labels), np.flatnonzero(~labels)
    n = min(len(pos), len(neg), max_per_class)
    chosen = np.concatenate([rng.choice(pos, n, replace=False), rng.choice(neg, n, replace=False)])
    return rng.permutation(chosen)


def _ridge_accuracy(x_train, y_train, x_test, y_test, l2: float) -> tuple[float, float]:
    """Fit w on [x, 1] to targets ±1 by ridge least squares; return (train acc, test acc).

    Solved with torch in float64: it respects torch's thread setting, where numpy's BLAS may
    spin many threads on a shared machine.
    """
    def design(x):
        x = torch.as_tensor(x, dtype=torch.float64)
        return torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], dim=1)

    a = design(x_train)
    y_train_t = torch.as_tensor(y_train)
    target = torch.where(y_train_t, 1.0, -1.0).to(torch.float64)
    gram = a.T @ a
    reg = l2 * torch.trace(gram) / a.shape[1] * torch.eye(a.shape[1], dtype=torch.float64)
    w = torch.linalg.solve(gram + reg, a.T @ target)
    train = float(((a @ w > 0) == y_train_t).double().mean())
    test = float(((design(x_test) @ w > 0) == torch.as_tensor(y_test)).double().mean())
    return train, test


def probe_accuracy(vectors: np.ndarray, labels: np.ndarray, *, max_per_class: int = 1000,
                   train_fraction: float = 0.7, l2: float = 1e-2, n_shuffles: int = 5,
                   seed: int = 0) -> ProbeScore:
    """Probe `labels` [n] (bool) from `vectors` [n d]; held-out accuracy vs a shuffled control.

    The control accuracy is the mean over `n_shuffles` label permutations.

    Raises ValueError when either class has fewer than 10 examples.
    """
    labels = np.asarray(labels, dtype=bool)
    if min(labels.sum(), (~labels).sum()) < 10:
        raise ValueError("a probe needs at least 10 examples of each class")
    rng = np.random.default_rng(seed)
    idx = balanced_indices(labels, max_per_class, rng)
    x = np.asarray(vectors, dtype=np.float64)[idx]
    x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-8)
    y = labels[idx]
    n_train = int(round(train_fraction * len(idx)))
    train_acc, test_acc = _ridge_accuracy(x[:n_train], y[:n_train], x[n_train:], y[n_train:], l2)
    controls = []
    for _ in range(n_shuffles):
        shuffled = rng.permutation(y)
        controls.append(_ridge_accuracy(x[:n_train], shuffled[:n_train], x[n_train:], shuffled[n_train:], l2)[1])
    return ProbeScore(accuracy=test_acc, control_accuracy=float(np.mean(controls)) if controls else float("nan"),
                      train_accuracy=train_acc,
                      n_examples=len(idx))
