"""C03: learned positional embeddings are low-dimensional: first-token direction, lateness, a helix."""

from __future__ import annotations

import numpy as np

from mechscope.claims.base import Budget, ClaimResult
from mechscope.errors import NotApplicableError
from mechscope.geometry.positional import PositionalConfig, PositionalGeometryResult, positional_geometry

ID = "C03"
SLUG = "positional-helix"
TITLE = ("Learned positional embeddings are low-dimensional: a first-token direction, a monotone "
         "\"lateness\" direction and a sinusoidal pair (a helix)")
REFERENCE = "Yedidia 2023; Chughtai & Lau 2024: top 3 PCs explain 95% (rows 1–127)"
RULE = ("PCA of W_pos rows 1..n: supported if the top 3 PCs explain ≥ 80% of the variance, |Spearman(PC1, "
        "position)| ≥ 0.9 and the mean sinusoid-fit R² of PC2/PC3 is ≥ 0.7; not supported if the top 3 PCs "
        "explain < 50% or |Spearman| < 0.5; otherwise inconclusive. Not applicable without learned positions.")


def rule(r: PositionalGeometryResult) -> str:
    helix = float(np.mean(r.helix_r2))
    if r.top3_explained >= 0.8 and abs(r.pc1_spearman) >= 0.9 and helix >= 0.7:
        return "supported"
    if r.top3_explained < 0.5 or abs(r.pc1_spearman) < 0.5:
        return "not supported"
    return "inconclusive"


def run(model, budget: Budget) -> ClaimResult:
    try:
        r = positional_geometry(model, PositionalConfig())
    except NotApplicableError as err:
        return ClaimResult(ID, SLUG, TITLE, "not applicable", evidence=str(err), rule=RULE, reference=REFERENCE,
                           method="PCA of the learned positional embedding matrix W_pos.")
    return ClaimResult(
        ID, SLUG, TITLE, rule(r),
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
        method=("PCA of W_pos rows 1..n (row 0 set apart); Spearman correlation of the PC1 score with position; "
                "least-squares fit of PC2 and PC3 by sinusoids of one shared frequency (grid over periods); "
                "first-token outlier score = distance of row 0 from the mean of the rest over their mean distance."),
        rule=RULE, reference=REFERENCE, figures=[r.figure()],
    )
