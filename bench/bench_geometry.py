"""Representation geometry side by side with the papers' formulas, on the same cached activations (issue 18).

1. Park et al. 2023: the whitening g = γ Cov(γ)^{-1/2} (Cov over the vocabulary, centred rows / V, inverse
   square root through the eigendecomposition) and the concept direction (normalised mean of the pair
   differences), written out below with numpy from the paper; mechscope's `causal_inner_product` and
   `concept_direction` on the same W_U. Target: 1 - cos ≤ 1e-6 for every concept, raw and whitened.
2. Engels et al. 2024: the circle probe (PCA to 5 by SVD, least squares without intercept onto (cos, sin),
   R² per target averaged), its QR, and the patch x' = μ + t R⁻¹ Qᵀ Pᵀ - μ P Q Qᵀ Pᵀ at the day token,
   written out below with numpy and a hand-written hook; mechscope's `fit_circle` and
   `circle_intervention(mode="engels")` on the same activations. Targets: R² and logit differences to 1e-5.
3. Engels et al.'s irreducibility indices on their four synthetic features: the ε-mixture index by gradient
   ascent (torch.autograd.grad, functional updates) and the separability index by numpy histograms over 1000 angles, against
   mechscope's `mixture_index` / `separability_index`. Target: 1e-3.

    python bench/bench_geometry.py [--quick]      -> bench/results/geometry.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mechscope  # noqa: E402
from harness import machine, write  # noqa: E402
from mechscope.geometry.circle import circle_intervention, cycle_activations, cycle_prompts, residual_hooks  # noqa: E402
from mechscope.geometry.circle_probe import fit_circle  # noqa: E402
from mechscope.geometry.concepts import causal_inner_product, concept_direction, word_vectors  # noqa: E402
from mechscope.geometry.irreducibility import engels_synthetic, mixture_index, separability_index  # noqa: E402
from mechscope.geometry.word_pairs import default_concepts  # noqa: E402


# -- 1. Park et al. ---------------------------------------------------------------------------------------------
def park_reference(gamma: np.ndarray, base: list[int], target: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(γ̄_W, ḡ_W): normalised mean pair difference in γ and in g = γ Cov(γ)^{-1/2}."""
    centred = gamma - gamma.mean(axis=0)
    cov = centred.T @ centred / gamma.shape[0]
    vals, vecs = np.linalg.eigh(cov)
    g = gamma @ (vecs * (1 / np.sqrt(vals))) @ vecs.T

    def direction(x):
        d = (x[target] - x[base]).mean(axis=0)
        return d / np.linalg.norm(d)
    return direction(gamma), direction(g)


def bench_park(model) -> dict:
    gamma_t = word_vectors(model, "unembedding")
    gamma = gamma_t.numpy()
    cip = causal_inner_product(gamma_t)
    whitened = cip.whiten(gamma_t)
    out = {}
    for name, c in default_concepts(model).items():
        ref_gamma, ref_g = park_reference(gamma, c.base_ids, c.target_ids)
        ours_gamma = concept_direction(gamma_t, c.base_ids, c.target_ids)[0].numpy()
        ours_g = concept_direction(whitened, c.base_ids, c.target_ids)[0].numpy()
        out[name] = {"one_minus_cos_gamma": float(1 - ours_gamma @ ref_gamma),
                     "one_minus_cos_g": float(1 - ours_g @ ref_g)}
    worst = max(max(v.values()) for v in out.values())
    return {"concepts": out, "worst_one_minus_cos": worst, "target": 1e-6, "pass": bool(worst <= 1e-6)}


# -- 2. Engels et al.: probe, QR and patch ------------------------------------------------------------------------
def engels_probe_reference(acts: np.ndarray, labels: np.ndarray, period: int, k: int = 5):
    mean = acts.mean(axis=0)
    _, _, vt = np.linalg.svd(acts - mean, full_matrices=False)
    proj = vt[:k].T                                           # [d k], "pca_projection_matrix"
    scores = (acts - mean) @ proj
    angle = 2 * np.pi * labels / period
    targets = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    w = np.linalg.lstsq(scores, targets, rcond=None)[0]
    pred = scores @ w
    r2 = [1 - ((targets[:, j] - pred[:, j]) ** 2).mean() / ((targets[:, j] - targets[:, j].mean()) ** 2).mean()
          for j in range(2)]
    q, r = np.linalg.qr(w)
    return float(np.mean(r2)), proj, q, r, mean


def engels_patch_reference(model, cp, hook: str, proj, q, r, mean) -> np.ndarray:
    """logit(old answer) - logit(new answer) under the paper's patch, for every prompt and every other start."""
    diffs = []
    for new in range(cp.period):
        t = np.array([np.cos(2 * np.pi * new / cp.period), np.sin(2 * np.pi * new / cp.period)])
        patched = mean + t @ np.linalg.inv(r) @ q.T @ proj.T - mean @ proj @ q @ q.T @ proj.T
        patched_t = torch.tensor(patched, dtype=model.dtype)

        def hook_fn(act, hook_point, patched_t=patched_t):
            act = act.clone()
            act[:, cp.position] = patched_t
            return act

        for i in np.flatnonzero(cp.starts != new):
            with torch.no_grad(), model.hooks(fwd={hook: hook_fn}):
                logits = model(cp.tokens[i:i + 1])[0, -1]
            old_id = cp.word_ids[cp.answers[i]]
            new_id = cp.word_ids[(new + cp.counts[i]) % cp.period]
            diffs.append(float(logits[old_id] - logits[new_id]))
    return np.array(diffs)


def bench_engels_probe(model, kind: str = "days") -> dict:
    cp = cycle_prompts(model, kind)
    hooks = residual_hooks(model)
    acts = cycle_activations(model, cp, hooks)
    out = {}
    for hook in hooks:
        ref_r2, proj, q, r, mean = engels_probe_reference(acts[hook], cp.starts, cp.period)
        fit = fit_circle(acts[hook], cp.starts, cp.period, n_components=5)
        ref_diffs = engels_patch_reference(model, cp, hook, proj, q, r, mean)
        _, ours = circle_intervention(model, cp, hook, acts[hook], fit, mode="engels")
        out[hook] = {"r2_ours": fit.r2, "r2_reference": ref_r2, "r2_abs_diff": abs(fit.r2 - ref_r2),
                     "logit_diff_max_abs_diff": float(np.max(np.abs(-ours - ref_diffs)))}
    worst_r2 = max(v["r2_abs_diff"] for v in out.values())
    worst_ld = max(v["logit_diff_max_abs_diff"] for v in out.values())
    return {"hooks": out, "worst_r2_abs_diff": worst_r2, "worst_logit_diff_abs_diff": worst_ld, "target": 1e-5,
            "pass": bool(worst_r2 <= 1e-5 and worst_ld <= 1e-5)}


# -- 3. Engels et al.: irreducibility indices ---------------------------------------------------------------------
def mixture_reference(x: torch.Tensor, init: torch.Tensor, epsilon: float = 0.1, steps: int = 10_000) -> float:
    """Gradient ascent a <- a + η ∂P/∂a, b <- b + η ∂P/∂b (η = 0.1) on P = mean σ((ε - |z|)/T), T = 1 - i/steps."""
    a, b = init.clone(), torch.zeros(())
    p = None
    for i in range(steps):
        a.requires_grad_(True)
        b.requires_grad_(True)
        y = x @ a + b
        p = torch.sigmoid((epsilon - (y / y.pow(2).mean().sqrt()).abs()) / (1 - i / steps)).mean()
        grad_a, grad_b = torch.autograd.grad(p, (a, b))
        a, b = (a + 0.1 * grad_a).detach(), (b + 0.1 * grad_b).detach()
    return float(p.detach())


def separability_reference(x: np.ndarray, n_bins: int = 20, bound: float = 3.0, res: int = 1000) -> float:
    x = x - x.mean(axis=0)
    x = x / (x**2).mean()
    edges = np.linspace(-bound, bound, 2 * n_bins + 1)
    best = np.inf
    for i in range(res):
        th = 2 * np.pi * i / res
        rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
        y = np.clip(x @ rot, -bound, bound - 1e-9)
        h, _, _ = np.histogram2d(y[:, 0], y[:, 1], bins=[edges, edges])
        joint = h / h.sum()
        prod = joint.sum(1)[:, None] * joint.sum(0)[None, :]
        best = min(best, float((joint * np.log((joint + 1e-4) / (prod + 1e-4))).sum()))
    return best / np.log(2)


def bench_irreducibility(steps: int, res: int) -> dict:
    out = {}
    for kind in ("gaussian", "gaussians", "circle", "lattice"):
        x = engels_synthetic(kind)
        init = torch.randn(2)     # the next draw of the seeded stream, as in the authors' order
        ours_m = mixture_index(x, n_steps=steps, init=init).index
        ref_m = mixture_reference(x, init, steps=steps)
        ours_s = separability_index(x, angular_res=res).index
        ref_s = separability_reference(x.double().numpy(), res=res)
        out[kind] = {"mixture_ours": ours_m, "mixture_reference": ref_m, "separability_bits_ours": ours_s,
                     "separability_bits_reference": ref_s,
                     "max_abs_diff": max(abs(ours_m - ref_m), abs(ours_s - ref_s))}
    worst = max(v["max_abs_diff"] for v in out.values())
    return {"features": out, "worst_abs_diff": worst, "target": 1e-3, "pass": bool(worst <= 1e-3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer mixture steps and angles")
    parser.add_argument("--model", default="organism:tiny-gpt2")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = mechscope.load(args.model)
    start = time.perf_counter()
    result = {
        "model": args.model,
        "park": bench_park(model),
        "engels_probe_and_patch": bench_engels_probe(model),
        "engels_irreducibility": bench_irreducibility(2000 if args.quick else 10_000, 200 if args.quick else 1000),
        "seconds": time.perf_counter() - start,
        "machine": machine(),
    }
    write("geometry", result)


if __name__ == "__main__":
    main()
