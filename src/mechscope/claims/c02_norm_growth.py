"""C02: the residual-stream norm grows roughly exponentially through the forward pass.

Experiment: mean L2 norm of the residual stream (positions >= 1; position 0 set apart) at the
embedding and after each block on held-out text; a line through log(norm) against block index gives
the growth factor per block and its R².

Null: a network that has learned nothing already grows: each block adds a roughly independent
output, so the norm grows like √L, and on 4-12 blocks a log-linear fit of √L growth gives factors
of 1.04-1.13 with R² ~ 0.98 (random GPT-2, LLaMA, NeoX). So the rule reads the model's factor
against its re-initialised twin's, and reports beside it how well a random-walk (√L) curve,
norm² = a + b·L, fits the same points.

Cost: two forward passes over budget.n_sequences sequences (model and twin).
"""

from __future__ import annotations

import math

import numpy as np

from mechscope.claims.base import Budget, Measurement
from mechscope.data.text import eval_token_batches
from mechscope.geometry.norms import residual_norms

ID = "C02"
NULL = "twin"
READS = ("growth_factor_per_block", "fit_r2", "n_blocks")
NULL_READS = ("growth_factor_per_block",)

MIN_FACTOR, MIN_R2, RATE_RATIO = 1.01, 0.8, 1.5
RULE = (f"exponential fit of the mean residual norm (positions ≥ 1) over the block outputs: supported if the "
        f"growth factor is ≥ {MIN_FACTOR} per block with R² ≥ {MIN_R2} and its log-rate is ≥ {RATE_RATIO}× the "
        "re-initialised twin's (a random network already grows like √L, which this fit reads as ×1.04-1.13 per block "
        "on 12-4 blocks); not supported if the factor is ≤ 1.0 (no growth); otherwise inconclusive; inconclusive "
        "with fewer than 3 blocks")


def verdict(metrics: dict, null: dict | None) -> str:
    factor, r2 = metrics["growth_factor_per_block"], metrics["fit_r2"]
    if metrics["n_blocks"] < 3:
        return "inconclusive"
    if factor <= 1.0:
        return "not supported"
    twin_rate = math.log(max(null["growth_factor_per_block"], 1.0)) if null is not None else math.inf
    if factor >= MIN_FACTOR and r2 >= MIN_R2 and math.log(factor) >= RATE_RATIO * twin_rate:
        return "supported"
    return "inconclusive"


def random_walk_r2(norms: list[float]) -> float:
    """R² of norm ≈ sqrt(a + b·L) over block outputs (a least-squares line through norm² against L)."""
    y = np.asarray(norms, dtype=np.float64) ** 2
    if len(y) < 3:
        return float("nan")
    x = np.arange(len(y), dtype=np.float64)
    slope, intercept = np.polyfit(x, y, 1)
    fit = np.sqrt(np.clip(intercept + slope * x, 0.0, None))
    residual = ((np.sqrt(y) - fit) ** 2).sum()
    total = ((np.sqrt(y) - np.sqrt(y).mean()) ** 2).sum()
    return float(1.0 - residual / total) if total > 0 else float("nan")


def measure(model, budget: Budget) -> Measurement:
    batches = eval_token_batches(model, seq_len=budget.seq_len, n_sequences=budget.n_sequences, seed=budget.seed)
    r = residual_norms(model, batches)
    n_blocks = len(r.mean_norm) - 1
    walk = random_walk_r2(r.mean_norm[1:])
    return Measurement(
        metrics={
            "growth_factor_per_block": round(r.growth_factor, 4), "fit_r2": round(r.fit_r2, 4),
            "random_walk_fit_r2": round(walk, 4), "n_blocks": n_blocks,
            "layers": r.layer_labels,
            "mean_norm": [round(v, 4) for v in r.mean_norm],
            "first_position_norm": [round(v, 4) for v in r.first_position_norm],
            "ov_norm_per_layer": [round(v, 4) for v in r.ov_norm],
            "n_tokens": r.n_tokens,
        },
        key_metric="growth_factor_per_block",
        evidence=(f"The mean residual norm goes from {r.mean_norm[0]:.3g} (embedding) to {r.mean_norm[-1]:.3g} "
                  f"after the last block; "
                  + (f"a line through log-norm over the block outputs gives ×{r.growth_factor:.3f} per block "
                     f"with R² = {r.fit_r2:.2f} (a √L random-walk curve fits with R² = {walk:.2f}). "
                     if n_blocks >= 3 else "too few blocks for a growth fit. ")
                  + f"Position 0 is reported apart (norm {r.first_position_norm[-1]:.3g} after the last block)."),
        method=("Mean L2 norm of the residual stream at the embedding and after each block over held-out text "
                "(positions ≥ 1; position 0 separately); least-squares line through log(norm) against block "
                "index; the same points fitted by sqrt(a + b·L); Frobenius norms of each head's OV matrix "
                "W_V W_O, averaged per layer. The same measurement on the re-initialised twin is the null."),
        figures=[r.figure()],
    )
