"""C18: early and late layers are special; middle layers are robust (Lad et al. 2024)."""

from __future__ import annotations

import numpy as np

from mechscope.claims.base import Budget, ClaimResult
from mechscope.data.text import eval_token_batches
from mechscope.geometry.layer_robustness import LayerRobustnessResult, layer_robustness

ID = "C18"
SLUG = "stages"
TITLE = "Early and late layers are special; middle layers are robust (stages of inference)"
REFERENCE = "Lad et al. 2024: 72–95% retained, first and last layers most sensitive"
RULE = ("delete each block in turn; top-1 agreement with the original model: supported if deleting the first "
        "block and deleting the last block both agree less than the median of the middle blocks; not "
        "supported if neither does; inconclusive if only one does, or with fewer than 3 blocks")


def rule(r: LayerRobustnessResult) -> str:
    if r.n_layers < 3:
        return "inconclusive"
    middle = float(np.median(r.deleted_agreement[1:-1]))
    below = [r.deleted_agreement[0] < middle, r.deleted_agreement[-1] < middle]
    if all(below):
        return "supported"
    if not any(below):
        return "not supported"
    return "inconclusive"


def run(model, budget: Budget) -> ClaimResult:
    batches = eval_token_batches(model, seq_len=budget.seq_len, n_sequences=budget.n_sequences, seed=budget.seed)
    r = layer_robustness(model, batches)
    middle = r.deleted_agreement[1:-1]
    return ClaimResult(
        ID, SLUG, TITLE, rule(r),
        metrics={"deleted_agreement": [round(v, 4) for v in r.deleted_agreement],
                 "deleted_ce": [round(v, 4) for v in r.deleted_ce],
                 "swapped_agreement": [round(v, 4) for v in r.swapped_agreement],
                 "swapped_ce": [round(v, 4) for v in r.swapped_ce], "base_ce": round(r.base_ce, 4),
                 "middle_median_agreement": round(float(np.median(middle)), 4) if middle else None,
                 "n_tokens": r.n_tokens},
        key_metric="middle_median_agreement",
        evidence=(f"Deleting a block keeps {', '.join(f'{a:.0%}' for a in r.deleted_agreement)} of the original "
                  f"top-1 predictions (blocks 0..{r.n_layers - 1}); swapping neighbours keeps "
                  f"{', '.join(f'{a:.0%}' for a in r.swapped_agreement)}. Original CE {r.base_ce:.2f} nats."),
        method=("Each block removed in turn (the residual stream skips it), and each adjacent pair swapped, by "
                "editing the model's block list; top-1 agreement with the unedited model and next-token CE on "
                "held-out text."),
        rule=RULE, reference=REFERENCE, figures=[r.figure()],
    )
