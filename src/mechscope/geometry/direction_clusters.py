"""Discovering multi-dimensional features by clustering SAE decoder directions (Engels et al. 2024, Sec. 4).

1. Affinity between dictionary elements: the cosine similarity of their decoder rows, those below
   `min_cosine` (default 0) set to 0.
2. Spectral clustering: the k eigenvectors of the symmetric normalised affinity D^{-1/2} A D^{-1/2} with the
   largest eigenvalues, rows normalised, then k-means (k-means++ start) with a seeded generator. The authors'
   spectral clustering was unseeded; here the same seed gives the same clusters.
3. A cluster's points: on the inputs where any of its latents fires, the SAE reconstruction from those latents
   only (latent activations [n m] @ decoder rows of the cluster). Their PCA, circle probe and irreducibility
   indices (`irreducibility`) then say whether the cluster is an irreducible multi-dimensional feature.
"""

from __future__ import annotations

import numpy as np
import torch

from mechscope.errors import InputError


def kmeans(points: torch.Tensor, k: int, *, seed: int = 0, n_iter: int = 100) -> np.ndarray:
    """[n] cluster labels of points [n d] by Lloyd's algorithm from a seeded k-means++ start."""
    gen = torch.Generator().manual_seed(seed)
    n = points.shape[0]
    centres = [points[torch.randint(n, (1,), generator=gen)].squeeze(0)]
    for _ in range(1, k):
        d2 = torch.cdist(points, torch.stack(centres)).min(1).values ** 2
        probs = d2 / d2.sum() if float(d2.sum()) > 0 else torch.full((n,), 1.0 / n, dtype=points.dtype)
        centres.append(points[torch.multinomial(probs, 1, generator=gen)].squeeze(0))
    c = torch.stack(centres)
    labels = torch.zeros(n, dtype=torch.long)
    for _ in range(n_iter):
        labels_new = torch.cdist(points, c).argmin(1)
        if _ and torch.equal(labels_new, labels):
            break
        labels = labels_new
        for j in range(k):
            if (labels == j).any():
                c[j] = points[labels == j].mean(0)
    return labels.numpy()


def cluster_directions(decoder, n_clusters: int, *, seed: int = 0, min_cosine: float = 0.0) -> np.ndarray:
    """[m] cluster label of each decoder row of `decoder` [m d] (spectral clustering on cosine affinity).

    min_cosine: similarities below it count as 0; raising it (e.g. 0.3) isolates unrelated directions, which
    otherwise pull on every cluster through their many small positive cosines.
    """
    w = torch.as_tensor(np.asarray(decoder) if not torch.is_tensor(decoder) else decoder.detach(),
                        dtype=torch.float64)
    if w.ndim != 2 or not 2 <= n_clusters <= w.shape[0]:
        raise InputError(f"need a decoder [m d] and 2 ≤ n_clusters ≤ m; got shape {tuple(w.shape)} and "
                         f"n_clusters={n_clusters}")
    unit = w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)
    cos = unit @ unit.T
    affinity = torch.where(cos >= min_cosine, cos, torch.zeros_like(cos)).clamp_min(0)
    deg = affinity.sum(1).clamp_min(1e-12)
    norm = affinity / torch.sqrt(deg[:, None] * deg[None, :])
    _, vecs = torch.linalg.eigh(norm)
    emb = vecs[:, -n_clusters:]
    emb = emb / emb.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return kmeans(emb, n_clusters, seed=seed)


def cluster_points(latent_acts, decoder, members) -> tuple[np.ndarray, np.ndarray]:
    """(rows [r] where any member latent fires, their reconstruction [r d] from the members only).

    latent_acts: [n m] SAE latent activations; decoder: [m d]; members: latent indices of one cluster.
    """
    acts = np.asarray(latent_acts, dtype=np.float64)
    dec = np.asarray(decoder, dtype=np.float64)
    members = np.asarray(members, dtype=np.int64)
    if len(members) == 0:
        raise InputError("a cluster needs at least one latent")
    sub = acts[:, members]
    rows = np.flatnonzero((sub > 0).any(1))
    return rows, sub[rows] @ dec[members]
