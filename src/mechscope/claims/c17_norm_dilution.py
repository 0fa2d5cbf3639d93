"""C17: because the residual norm grows, features written early shrink in relative importance.

Experiment: per token, u = the unit embedding direction (resid_pre of block 0); after each block
the share of the stream along u, <r,u>/‖r‖, the norm growth, and how much of what was written is
still there, <r,u>/‖embedding‖.

Null: the re-initialised twin. Random blocks also add norm and so dilute the embedding; the rule
asks the model to dilute it more than its twin does.

Cost: one forward pass over budget.n_sequences sequences, on the model and the twin.
"""

from __future__ import annotations

from mechscope.claims.base import Budget, Measurement
from mechscope.data.text import eval_token_batches
from mechscope.geometry.dilution import norm_dilution

ID = "C17"
NULL = "twin"
READS = ("final_share", "final_retained", "final_norm_ratio")
NULL_READS = ("final_share",)
SHARE_MARGIN = 0.2   # the model's final share must sit this far below the twin's
RULE = ("direction u = the embedding at each token: supported if after the last block its share of the "
        "stream <r,u>/‖r‖ is ≤ 0.5, the norm has grown ≥ 1.5× and the component along u is still ≥ 50% "
        "of what was written (diluted, not erased), with the share ≥ 0.2 below the re-initialised twin's; not supported if the share stays > 0.8 or the norm grows "
        "< 1.1×; otherwise inconclusive")


def verdict(metrics: dict, null: dict | None) -> str:
    share, growth, retained = metrics["final_share"], metrics["final_norm_ratio"], metrics["final_retained"]
    if share > 0.8 or growth < 1.1:
        return "not supported"
    beyond_twin = null is not None and share <= null["final_share"] - SHARE_MARGIN
    if share <= 0.5 and growth >= 1.5 and retained >= 0.5 and beyond_twin:
        return "supported"
    return "inconclusive"


def measure(model, budget: Budget) -> Measurement:
    batches = eval_token_batches(model, seq_len=budget.seq_len, n_sequences=budget.n_sequences, seed=budget.seed)
    r = norm_dilution(model, batches, source_point=0)
    return Measurement(
        metrics={"final_share": round(r.share[-1], 4), "final_retained": round(r.retained[-1], 4),
                 "final_norm_ratio": round(r.norm_ratio[-1], 4), "layers": r.layer_labels,
                 "share": [round(v, 4) for v in r.share], "retained": [round(v, 4) for v in r.retained],
                 "nominal_share": [round(v, 4) for v in r.nominal_share], "n_tokens": r.n_tokens},
        key_metric="final_share",
        evidence=(f"The embedding direction makes up {r.share[-1]:.2f} of the residual stream after the last "
                  f"block (1.0 at the start) while the norm grows {r.norm_ratio[-1]:.1f}×; the component along it "
                  f"is {r.retained[-1]:.2f}× what was written, so the fall is "
                  f"{'dilution by growth' if r.retained[-1] >= 0.5 else 'partly erasure'}."),
        method=("Per token, u = unit vector of the embedding (resid_pre of block 0). After each block: share = "
                "<r,u>/‖r‖, retained = <r,u>/‖embedding‖, nominal share = ‖embedding‖/‖r‖; means over held-out "
                "tokens at positions ≥ 1."),
        figures=[r.figure()],
    )
