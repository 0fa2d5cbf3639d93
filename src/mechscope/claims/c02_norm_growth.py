"""C02: the residual-stream norm grows roughly exponentially through the forward pass."""

from __future__ import annotations

from mechscope.claims.base import Budget, ClaimResult
from mechscope.data.text import eval_token_batches
from mechscope.geometry.norms import NormGrowthResult, residual_norms

ID = "C02"
SLUG = "norm-growth"
TITLE = "Residual-stream norm grows roughly exponentially through the forward pass"
REFERENCE = "Heimersheim & Turner 2023: ≈1.045×/layer in GPT-2 XL; some models decrease"
RULE = ("exponential fit of the mean residual norm (positions ≥ 1) over the block outputs: supported if the "
        "growth factor is ≥ 1.01 per block and R² ≥ 0.8; not supported if the factor is ≤ 1.0 (no growth); "
        "otherwise inconclusive (grows, but not exponentially); inconclusive with fewer than 3 blocks")


def rule(r: NormGrowthResult) -> str:
    if len(r.mean_norm) < 4:
        return "inconclusive"
    if r.growth_factor <= 1.0:
        return "not supported"
    if r.growth_factor >= 1.01 and r.fit_r2 >= 0.8:
        return "supported"
    return "inconclusive"


def run(model, budget: Budget) -> ClaimResult:
    batches = eval_token_batches(model, seq_len=budget.seq_len, n_sequences=budget.n_sequences, seed=budget.seed)
    r = residual_norms(model, batches)
    return ClaimResult(
        ID, SLUG, TITLE, rule(r),
        metrics={
            "growth_factor_per_block": round(r.growth_factor, 4), "fit_r2": round(r.fit_r2, 4),
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
                     f"with R² = {r.fit_r2:.2f}. " if len(r.mean_norm) >= 3 else "one block: no growth fit. ")
                  + f"Position 0 is reported apart (norm {r.first_position_norm[-1]:.3g} after the last block)."),
        method=("Mean L2 norm of the residual stream at the embedding and after each block over held-out text "
                "(positions ≥ 1; position 0 separately); least-squares line through log(norm) against block "
                "index; Frobenius norms of each head's OV matrix W_V W_O, averaged per layer."),
        rule=RULE, reference=REFERENCE, figures=[r.figure()],
    )
