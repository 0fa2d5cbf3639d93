"""C09: some heads implement induction: they attend to the token after the previous occurrence of
the current token and copy it.

Experiment: repeated random-token sequences [BOS] r r. Per head: prefix-matching (induction)
score, duplicate-token and previous-token scores, OV copying score. Behaviour: loss on the first
vs the second copy. Causal check: mean-ablate the top induction head (hook_z, mean over the same
sequences) and measure how much of the loss drop on the second copy it undoes. The lagged detectors
(attention d after the earlier occurrence, lookback k) are reported beside it: a model can copy with
shifted heads (d > 1) that the textbook score misses; the verdict stays with the claim as stated.
"""

from __future__ import annotations

from mechscope.attention.icl import repeat_loss_with_heads_ablated
from mechscope.attention.report import head_report
from mechscope.claims.base import Budget, ClaimResult
from mechscope.tasks.induction import repeated_tokens

ID = "C09"
SLUG = "induction-heads"
TITLE = "Some heads implement induction: attend to the token after the previous occurrence and copy it"
REFERENCE = "Olsson et al. 2022; GPT-2 small heads 5.5, 6.9, 7.10, 5.1, 7.2 score 0.83-0.93"

STRONG_SCORE, WEAK_SCORE = 0.3, 0.1        # prefix-matching attention (uniform over 40 keys ~ 0.025)
STRONG_DROP, WEAK_DROP = 1.0, 0.2          # nats of loss drop from the first to the second copy
ABLATION_SHARE = 0.1                       # share of the drop the top head must carry
RULE = (f"supported if the best prefix-matching score >= {STRONG_SCORE}, the loss drops by >= {STRONG_DROP} "
        f"nats on the second copy, and mean-ablating the top induction head undoes >= {ABLATION_SHARE:.0%} of "
        f"that drop; not supported if the best score < {WEAK_SCORE} or the drop < {WEAK_DROP} nats; "
        "inconclusive otherwise")


def verdict(max_score: float, drop: float, ablation_share: float) -> str:
    if max_score < WEAK_SCORE or drop < WEAK_DROP:
        return "not supported"
    if max_score >= STRONG_SCORE and drop >= STRONG_DROP and ablation_share >= ABLATION_SHARE:
        return "supported"
    return "inconclusive"


def run(model, budget: Budget) -> ClaimResult:
    half_len = min(max(16, budget.seq_len // 2), (model.cfg.n_ctx - 1) // 2, 32)
    report = head_report(model, n_sequences=budget.n_sequences, half_len=half_len, seed=budget.seed)
    induction = report.scores["induction"]
    (layer, head, best) = induction.top(1)[0]
    rep = repeated_tokens(model, budget.n_sequences, half_len, budget.seed)
    ablated = repeat_loss_with_heads_ablated(model, rep, [(layer, head)]).second_copy_loss
    drop = report.repeat.drop
    share = (ablated - report.repeat.second_copy_loss) / drop if drop > 0 else 0.0
    prev = report.scores["previous-token"].top(1)[0]
    copying = report.scores["copying"].scores[layer, head].item()
    v = verdict(best, drop, share)
    lagged = report.scores["lagged-induction"]
    (lag_layer, lag_head, lag_score) = lagged.top(1)[0]
    lag = int(lagged.lags[lag_layer, lag_head])
    lookback = report.scores["lookback"]
    metrics = {
        "max_induction_score": best, "top_induction_head": f"{layer}.{head}",
        "top_induction_heads": [f"{a}.{b}: {s:.2f}" for a, b, s in induction.top(5)],
        "top_previous_token_heads": [f"{a}.{b}: {s:.2f}" for a, b, s in report.scores["previous-token"].top(3)],
        "max_previous_token_score": prev[2],
        "max_duplicate_token_score": report.scores["duplicate-token"].top(1)[0][2],
        "max_lagged_induction_score": lag_score, "top_lagged_induction_head": f"{lag_layer}.{lag_head}",
        "lag_of_top_lagged_induction_head": lag,
        "top_lookback_heads": [f"{a}.{b}: {sc:.2f} (lag {int(lookback.lags[a, b])})" for a, b, sc in lookback.top(3)],
        "copying_score_of_top_induction_head": copying,
        "first_copy_loss": report.repeat.first_copy_loss, "second_copy_loss": report.repeat.second_copy_loss,
        "loss_drop": drop, "icl_score": report.icl.score, "second_copy_loss_top_head_ablated": ablated, "ablation_share_of_drop": share,
        "n_sequences": budget.n_sequences, "half_len": half_len,
    }
    evidence = (
        f"On {budget.n_sequences} repeated random-token sequences ({half_len} tokens per copy) the loss falls "
        f"from {report.repeat.first_copy_loss:.2f} to {report.repeat.second_copy_loss:.2f} nats on the second "
        f"copy. The best prefix-matching head is {layer}.{head} (score {best:.2f}; OV copying score {copying:.2f}); "
        f"mean-ablating it undoes {share:.0%} of the drop. The best previous-token head is {prev[0]}.{prev[1]} "
        f"(score {prev[2]:.2f}).")
    if lag > 1 and lag_score >= STRONG_SCORE and best < STRONG_SCORE:
        evidence += (f" Shifted induction heads are present: {lag_layer}.{lag_head} attends {lag} "
                     f"tokens after the earlier occurrence (score {lag_score:.2f}); the strongest lookback heads "
                     f"are {', '.join(metrics['top_lookback_heads'])}.")
    return ClaimResult(
        id=ID, slug=SLUG, title=TITLE, verdict=v, metrics=metrics, key_metric="max_induction_score",
        evidence=evidence, rule=RULE, reference=REFERENCE, figures=[report.figure(), report.repeat.figure()],
        method=("Repeated random tokens [BOS] r r; per-head mean attention from the second copy to the token after "
                "the first occurrence (prefix matching), to the same token (duplicate) and to the previous token; "
                "OV-circuit copying score sum(eig)/sum(|eig|) on 200 sampled tokens; per-token loss on both "
                "copies; mean ablation of the top induction head's hook_z."))
