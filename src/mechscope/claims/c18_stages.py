"""C18: early and late layers are special; middle layers are robust (Lad et al. 2024).

Experiment: each block deleted in turn (the residual stream skips it), and each adjacent pair
swapped; top-1 agreement with the unedited model and next-token CE on held-out text.

Null: the re-initialised twin, where every block adds a little noise and deleting any one of them
changes little; and an absolute bar from the reference: Lad et al. find 72-95% of predictions kept
when a middle layer is deleted, with the first and last layers the most sensitive.

Cost (per model; the twin doubles it): one unedited forward over T = n_sequences x seq_len tokens, then
per edited block L the blocks from L on (from the cached residual stream entering L) and the
unembedding of all T positions. B = min(n_layers, budget.max_layers) blocks are deleted, spread evenly
over the depth (the first and the last always among them), and B - 1 adjacent pairs swapped. On a
model deeper than budget.max_layers (quick on real models) the swaps, which the rule does not read,
are left out and T is halved (DEEP_SEQUENCE_SHARE): about B x (n_layers / 2 + unembedding) block-passes
of T / 2 tokens, linear in layers x tokens. Under `full` every block is edited: quadratic in depth.
"""

from __future__ import annotations

import numpy as np

from mechscope.claims.base import Budget, Measurement
from mechscope.data.text import eval_token_batches
from mechscope.geometry.layer_robustness import layer_robustness

ID = "C18"
NULL = "twin"
READS = ("first_block_agreement", "last_block_agreement", "middle_median_agreement", "n_blocks")

MIDDLE_ROBUST, MARGIN, TWIN_MARGIN = 0.72, 0.1, 0.1
DEEP_SEQUENCE_SHARE = 0.5   # share of budget.n_sequences read on models deeper than budget.max_layers
RULE = (f"delete each block in turn; top-1 agreement with the original model. Supported if the middle blocks are "
        f"robust (median agreement ≥ {MIDDLE_ROBUST:.0%}, the bottom of the 72–95% reference band), deleting the first "
        f"block and deleting the last block each agree ≥ {MARGIN:.0%} less than that median, and that contrast "
        f"(median minus the larger of the two) is ≥ {TWIN_MARGIN:.0%} above the re-initialised twin's; not supported if "
        f"the middle blocks are not robust (median < {MIDDLE_ROBUST:.0%}) or neither end block is below the median; "
        "inconclusive otherwise, and with fewer than 3 blocks")


def contrast(metrics: dict) -> float:
    """Middle median minus the larger of the first and last block's agreement."""
    return metrics["middle_median_agreement"] - max(metrics["first_block_agreement"], metrics["last_block_agreement"])


def verdict(metrics: dict, null: dict | None) -> str:
    if metrics["n_blocks"] < 3:
        return "inconclusive"
    middle = metrics["middle_median_agreement"]
    first, last = metrics["first_block_agreement"], metrics["last_block_agreement"]
    if middle < MIDDLE_ROBUST or (first >= middle and last >= middle):
        return "not supported"
    beyond_twin = null is not None and null["n_blocks"] >= 3 and contrast(metrics) >= contrast(null) + TWIN_MARGIN
    if first <= middle - MARGIN and last <= middle - MARGIN and beyond_twin:
        return "supported"
    return "inconclusive"


def measure(model, budget: Budget) -> Measurement:
    deep = budget.max_layers is not None and model.cfg.n_layers > budget.max_layers
    n_sequences = max(4, round(budget.n_sequences * DEEP_SEQUENCE_SHARE)) if deep else budget.n_sequences
    batches = eval_token_batches(model, seq_len=budget.seq_len, n_sequences=n_sequences, seed=budget.seed)
    r = layer_robustness(model, batches, layers=budget.layers(model.cfg.n_layers), swaps=not deep)
    middle = r.deleted_agreement[1:-1]
    median = float(np.median(middle)) if middle else float(np.median(r.deleted_agreement))
    return Measurement(
        metrics={"middle_median_agreement": round(median, 4),
                 "first_block_agreement": round(r.deleted_agreement[0], 4),
                 "last_block_agreement": round(r.deleted_agreement[-1], 4), "n_blocks": r.n_layers,
                 "edited_blocks": r.layers,
                 "deleted_agreement": [round(v, 4) for v in r.deleted_agreement],
                 "deleted_ce": [round(v, 4) for v in r.deleted_ce],
                 "swapped_agreement": [round(v, 4) for v in r.swapped_agreement],
                 "swapped_ce": [round(v, 4) for v in r.swapped_ce], "base_ce": round(r.base_ce, 4),
                 "n_tokens": r.n_tokens},
        key_metric="middle_median_agreement",
        evidence=(f"Deleting a block keeps {', '.join(f'{a:.0%}' for a in r.deleted_agreement)} of the original "
                  f"top-1 predictions (blocks {', '.join(map(str, r.layers))} of {r.n_layers}; middle median {median:.0%}, reference band "
                  "72–95%)"
                  + (f"; swapping neighbours keeps {', '.join(f'{a:.0%}' for a in r.swapped_agreement)}"
                     if r.swapped_agreement else "") + ". "
                  f"Original CE {r.base_ce:.2f} nats."),
        method=("Each block removed in turn (the residual stream skips it)"
                + (", and each adjacent pair swapped," if r.swapped_agreement else "") + " by editing the model's "
                "block list, run from the edited block on; top-1 agreement with the unedited model and next-token "
                f"CE on {r.n_tokens} held-out next-token predictions."),
        figures=[r.figure()],
    )
