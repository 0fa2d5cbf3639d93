"""Seeded spectral clustering of decoder directions recovers planted multi-dimensional clusters."""

from __future__ import annotations

import numpy as np
import torch

from mechscope.geometry.direction_clusters import cluster_directions, cluster_points


def planted_decoder(seed=1, d=64, n_noise=10):
    g = torch.Generator().manual_seed(seed)
    rows, truth = [], []
    for c in range(3):
        plane = torch.linalg.qr(torch.randn(d, 2, generator=g))[0]
        for j in range(4):
            a = np.pi / 2 * j / 3
            rows.append(plane @ torch.tensor([np.cos(a), np.sin(a)], dtype=torch.float32))
            truth.append(c)
    for j in range(n_noise):
        rows.append(torch.randn(d, generator=g))
        truth.append(3 + j)
    return torch.stack(rows), np.array(truth)


def same_partition(a, b) -> bool:
    return all((a[i] == a[j]) == (b[i] == b[j]) for i in range(len(a)) for j in range(len(a)))


def test_planted_clusters_come_back_and_the_seed_fixes_them():
    decoder, truth = planted_decoder(n_noise=0)
    labels = cluster_directions(decoder, 3, seed=0)
    assert same_partition(labels, truth)
    decoder, truth = planted_decoder()
    labels = cluster_directions(decoder, 13, seed=0, min_cosine=0.3)
    assert same_partition(labels, truth)
    assert (cluster_directions(decoder, 13, seed=0, min_cosine=0.3) == labels).all()


def test_cluster_points_are_the_members_reconstruction():
    rng = np.random.default_rng(0)
    acts = np.maximum(rng.normal(size=(50, 6)), 0)
    acts[:5, [1, 2]] = 0
    dec = rng.normal(size=(6, 8))
    rows, pts = cluster_points(acts, dec, [1, 2])
    assert set(range(5)).isdisjoint(rows)
    np.testing.assert_allclose(pts, acts[rows][:, [1, 2]] @ dec[[1, 2]])
