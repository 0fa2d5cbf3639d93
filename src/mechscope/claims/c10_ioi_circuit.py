"""C10: a small set of heads implements indirect object identification.

Experiment: IOI prompts (ABBA and BABA), metric logit(IO) - logit(S). Heads are ranked by their
total effect (noising hook_z with the ABC set, every position at once) on one half of the prompts;
the circuit is the top 15% of heads; its faithfulness (logit diff with every other head
mean-ablated over the ABC set, over the full model's) is measured on the other half, so the circuit
is not scored on the prompts that chose it. Also: direct effect on the logits by path patching, and
name-mover scores (attention END -> IO x direct logit effect).

Null: the re-initialised twin (about 50% accuracy, logit diff ~ 0).
Cost (on the model; the twin's run reads only its logit diff: 64 prompts, two forwards each): one noising
sweep over the heads, one path-patching run and one faithfulness run on n_prompts / 2 prompts each. The
sweep patches every head exactly on models with at most budget.max_layers blocks (one forward per head
and prompt from the head's layer on: quadratic in depth); deeper models get an attribution-patching
screen of every head (one forward + backward) and exact patches of only the 1.5 x circuit-size heads it
ranks highest (at most max_layers x n_heads; patching/screened.py): linear in depth. The baseline reads
64 prompts (256 when a reading's interval holds a threshold; claims/head_circuit.py), two forwards each.
Path patching to the logits needs no forward beyond the two cached runs (patching/path.py).
"""

from __future__ import annotations

from mechscope.attention.name_movers import name_mover_scores
from mechscope.claims.base import Budget, Measurement
from mechscope.claims.head_circuit import baseline_metrics, choose_and_score, without_circuit
from mechscope.patching.path import path_patching
from mechscope.tasks.ioi import ioi_task

ID = "C10"
NULL = "twin"
READS = ("accuracy", "logit_diff", "faithfulness")
NULL_READS = ("logit_diff",)

CIRCUIT_FRACTION = 0.15
BASELINE_PROMPTS = 256   # accuracy near a threshold needs many prompts to read the same under every seed
MIN_ACCURACY, MIN_LOGIT_DIFF, MIN_FAITHFUL, DIFF_MARGIN = 0.9, 1.0, 0.6, 1.0
NO_BEHAVIOUR = 0.7   # below this accuracy the rule says "not supported" and no circuit is searched
CIRCUIT_READS = ("faithfulness",)   # the readings the circuit search exists for
RULE = (f"supported if the model gets IOI right (accuracy >= {MIN_ACCURACY:.0%}, mean logit diff >= {MIN_LOGIT_DIFF} "
        f"and >= {DIFF_MARGIN} above the re-initialised twin's) and the top {CIRCUIT_FRACTION:.0%} of heads by total "
        f"effect on half of the prompts, with all other heads mean-ablated, keep >= {MIN_FAITHFUL:.0%} of the logit "
        "diff on the other half; not supported if accuracy < 70% or that circuit keeps < 30%; inconclusive otherwise")


def verdict(metrics: dict, null: dict | None) -> str:
    accuracy = metrics["accuracy"]
    if accuracy < NO_BEHAVIOUR:
        return "not supported"
    faithfulness = metrics["faithfulness"]
    if faithfulness < 0.3:
        return "not supported"
    beyond_twin = null is not None and metrics["logit_diff"] >= null["logit_diff"] + DIFF_MARGIN
    if accuracy >= MIN_ACCURACY and metrics["logit_diff"] >= MIN_LOGIT_DIFF and beyond_twin \
            and faithfulness >= MIN_FAITHFUL:
        return "supported"
    return "inconclusive"


def measure(model, budget: Budget) -> Measurement:
    every = ioi_task(model, n_prompts=max(BASELINE_PROMPTS, budget.n_prompts), seed=budget.seed, corrupt="abc")
    thresholds = {"accuracy": (NO_BEHAVIOUR, MIN_ACCURACY), "logit_diff": (MIN_LOGIT_DIFF,)}
    base, without = without_circuit(model, every, budget, "abc_logit_diff", thresholds, NO_BEHAVIOUR, CIRCUIT_READS)
    if without is not None:
        return without
    chosen = choose_and_score(model, every, budget, "noise", CIRCUIT_FRACTION, thresholds, base)
    base, task, select, held_out = chosen.baseline, chosen.task, chosen.select, chosen.held_out
    screen, total, circuit, faith = chosen.screen, chosen.screen.result, chosen.circuit, chosen.faithfulness
    n_heads, k, screened = chosen.n_heads, len(chosen.circuit), chosen.screened
    direct = path_patching(model, select, senders=circuit if screened else None)
    movers = name_mover_scores(model, select)
    metrics = {
        **baseline_metrics(base, "abc_logit_diff", budget.seed), "faithfulness": faith.faithfulness, "circuit_size": k,
        "n_heads": n_heads, "circuit_heads": [f"{a}.{b}" for a, b in circuit],
        "circuit_logit_diff": faith.circuit_metric, "all_heads_ablated_logit_diff": faith.ablated_all_metric,
        "top_total_effect_heads": [f"{i[0]}.{i[1]}: {v_:.2f}" for i, v_ in total.top(5)],
        "top_direct_effect_heads": [f"{i[0]}.{i[1]}: {v_:.2f}" for i, v_ in direct.top(5)],
        "top_name_mover_heads": [f"{a}.{b}: {s:.2f}" for a, b, s in movers.as_head_scores().top(3)],
        "n_selection_prompts": len(select), "n_held_out_prompts": len(held_out),
        "n_heads_patched_exactly": screen.n_exact,
        "templates": sorted(set(task.labels["template"].tolist())),
    }
    evidence = (
        f"On {base.n_prompts} IOI prompts the mean logit diff IO - S is {base.logit_diff:.2f} with {base.accuracy:.0%} "
        f"of prompts correct (ABC set: {base.corrupt_metric:.2f}). The {k} heads with the largest total effect on the "
        f"selection half ({', '.join(metrics['circuit_heads'][:6])}{'...' if k > 6 else ''}) keep "
        f"{faith.faithfulness:.0%} of the logit diff on the held-out half when all other heads are mean-ablated. "
        f"Largest direct effects: {', '.join(metrics['top_direct_effect_heads'][:3])}.")
    # the key number is the one the rule reads against the twin: a twin without the behaviour has no
    # meaningful faithfulness (a ratio of two logit diffs near zero; it read 1.02 and 3.03 beside real ones)
    return Measurement(
        metrics=metrics, key_metric="logit_diff", evidence=evidence,
        figures=[total.figure(), direct.figure(), movers.figure(), faith.figure()],
        method=("IOI prompts from BABA/ABBA templates (the organism's ground truth or generic English names that "
                "are single tokens); noising activation patching of each head's hook_z with the ABC set on the even "
                + (f"prompts (attribution-patching screen of all {n_heads} heads, the top {screen.n_exact} patched "
                   "exactly; path patching from the circuit's heads only);" if screened else "prompts;")
                + f" circuit = top {CIRCUIT_FRACTION:.0%} of heads; faithfulness with ABC-mean ablation of all "
                "other heads on the odd prompts; path patching heads -> logits (other heads and MLPs frozen); "
                "name-mover scores."))
