"""C03: learned positional embeddings are low-dimensional: first-token direction, lateness, a helix.

Experiment: PCA of W_pos rows 1..min(127, n_ctx - 1), the rows the reference reads (row 0 set
apart); Spearman of PC1 against position; a shared-frequency sinusoid fit of PC2 and PC3.

Null: the re-initialised twin (i.i.d. random rows: no low-dimensional structure; the top 3 of
127 random directions carry ~7% of the variance). Not applicable without learned positions.

Cost: one SVD of a [127 d_model] matrix, on the model and the twin.
"""

from __future__ import annotations

import numpy as np

from mechscope.claims.base import Budget, Measurement
from mechscope.geometry.positional import PositionalConfig, positional_geometry

ID = "C03"
NULL = "twin"
READS = ("top3_explained", "pc1_spearman", "helix_r2")
NULL_READS = ("top3_explained",)
MAX_ROWS = 128          # rows 0..127: the reference reads rows 1-127
TWIN_MARGIN = 0.3       # top-3 share above the twin's
RULE = ("PCA of W_pos rows 1..min(127, n_ctx - 1): supported if the top 3 PCs explain ≥ 80% of the variance "
        "and ≥ 30 points more than on the re-initialised twin, |Spearman(PC1, position)| ≥ 0.9 and the mean "
        "sinusoid-fit R² of PC2/PC3 is ≥ 0.7; not supported if the top 3 PCs "
        "explain < 50% or |Spearman| < 0.5; otherwise inconclusive. Not applicable without learned positions.")


def verdict(metrics: dict, null: dict | None) -> str:
    top3, rho = metrics["top3_explained"], abs(metrics["pc1_spearman"])
    helix = float(np.mean(metrics["helix_r2"]))
    beyond_twin = null is not None and top3 >= null["top3_explained"] + TWIN_MARGIN
    if top3 >= 0.8 and rho >= 0.9 and helix >= 0.7 and beyond_twin:
        return "supported"
    if top3 < 0.5 or rho < 0.5:
        return "not supported"
    return "inconclusive"


def measure(model, budget: Budget) -> Measurement:
    r = positional_geometry(model, PositionalConfig(max_positions=MAX_ROWS))  # NotApplicableError without W_pos
    return Measurement(
        metrics={
            "top3_explained": round(r.top3_explained, 4),
            "explained": [round(v, 4) for v in r.explained],
            "pc1_spearman": round(r.pc1_spearman, 4),
            "helix_r2": [round(v, 4) for v in r.helix_r2],
            "helix_period": round(r.helix_period, 2), "helix_phase_gap_rad": round(r.helix_phase_gap, 3),
            "first_token_outlier": round(r.first_token_outlier, 3), "n_positions": r.n_positions,
        },
        key_metric="top3_explained",
        evidence=(f"The top 3 principal components of positional rows 1..{r.n_positions - 1} explain "
                  f"{100 * r.top3_explained:.0f}% of their variance. PC1 against position: Spearman "
                  f"{r.pc1_spearman:.2f}. PC2/PC3 fit sinusoids of period {r.helix_period:.0f} positions with "
                  f"R² {r.helix_r2[0]:.2f} / {r.helix_r2[1]:.2f}. Row 0 lies {r.first_token_outlier:.1f}× the "
                  f"typical spread from the others."),
        method=(f"PCA of W_pos rows 1..{r.n_positions - 1} (row 0 set apart); Spearman correlation of the PC1 score with position; "
                "least-squares fit of PC2 and PC3 by sinusoids of one shared frequency (grid over periods); "
                "first-token outlier score = distance of row 0 from the mean of the rest over their mean distance."),
        figures=[r.figure()],
    )
