"""C11: docstring argument completion is done by a multi-level attention circuit.

Experiment: docstring prompts that stop after ':param' with the next argument due (clean), and the
same prompts with the signature's argument names replaced (corrupt). The model is scored against
the right competitor: the clean signature's next, still undocumented argument, a name it sees in
the prompt (a name absent from the prompt would be beaten by any model). Per-head denoising
patching of hook_z on one half of the prompts gives each head's share of the logit difference;
heads carrying >= 10% are "important", the circuit is the top 15% of heads, and its faithfulness
(every other head mean-ablated over the corrupt prompts) is measured on the *other* half, so the
circuit is not scored on the prompts that chose it. "Multi-level": important heads in >= 2 layers.

Null: the re-initialised twin (about 50% accuracy, logit diff ~ 0).
Cost (on the model; the twin's run reads only its logit diff: 64 prompts, two forwards each): one
denoising sweep over the heads and one faithfulness run on n_prompts / 2 prompts each. Every head is
patched exactly on models with at most budget.max_layers blocks (quadratic in depth); deeper models get
an attribution-patching screen of every head and exact patches of the 1.5 x circuit-size heads it ranks
highest (at most max_layers x n_heads; patching/screened.py: linear in depth); only exactly patched heads
can count as important. The baseline reads 64 prompts, doubled (128, then 256) while the accuracy's
interval holds a threshold (full: 256), two forwards each, answer position only. At the GPT-2-small shape
(12 layers, 144 heads: 33 patched exactly) a model near a threshold costs ~75 CPU s of baseline (256
prompts) and ~75 CPU s of exact patching, the screen and the faithfulness run ~15 CPU s.
"""

from __future__ import annotations

from mechscope.claims.base import Budget, Measurement
from mechscope.claims.head_circuit import baseline_metrics, choose_and_score, without_circuit
from mechscope.tasks.docstring import docstring_task

ID = "C11"
NULL = "twin"
READS = ("accuracy", "logit_diff", "faithfulness", "n_layers_important")
NULL_READS = ("logit_diff",)

CIRCUIT_FRACTION, IMPORTANT = 0.15, 0.10
BASELINE_PROMPTS = 256   # accuracy near a threshold needs many prompts to read the same under every seed
MIN_ACCURACY, MIN_FAITHFUL, DIFF_MARGIN = 0.8, 0.6, 1.0
NO_BEHAVIOUR = 0.6   # below this accuracy the rule says "not supported" and no circuit is searched
CIRCUIT_READS = ("faithfulness", "n_layers_important")   # the readings the circuit search exists for
RULE = (f"accuracy: the answer's logit above the next undocumented argument's (a name in the prompt). Supported "
        f"if accuracy >= {MIN_ACCURACY:.0%}, the mean logit diff is >= {DIFF_MARGIN} above the re-initialised twin's, "
        f"the top {CIRCUIT_FRACTION:.0%} of heads (chosen on half of the prompts) keep >= {MIN_FAITHFUL:.0%} of the "
        f"logit diff on the other half with the rest mean-ablated, and heads with >= {IMPORTANT:.0%} of the effect "
        "sit in >= 2 layers; not supported if accuracy < 60%, or the important heads sit in one layer; "
        "inconclusive otherwise")


def verdict(metrics: dict, null: dict | None) -> str:
    accuracy = metrics["accuracy"]
    if accuracy < NO_BEHAVIOUR:
        return "not supported"
    if metrics["n_layers_important"] == 1 and accuracy >= MIN_ACCURACY:
        return "not supported"
    beyond_twin = null is not None and metrics["logit_diff"] >= null["logit_diff"] + DIFF_MARGIN
    if accuracy >= MIN_ACCURACY and beyond_twin and metrics["faithfulness"] >= MIN_FAITHFUL \
            and metrics["n_layers_important"] >= 2:
        return "supported"
    return "inconclusive"


def measure(model, budget: Budget) -> Measurement:
    every = docstring_task(model, n_prompts=max(BASELINE_PROMPTS, budget.n_prompts), seed=budget.seed, wrong="signature")
    thresholds = {"accuracy": (NO_BEHAVIOUR, MIN_ACCURACY)}
    base, without = without_circuit(model, every, budget, "corrupt_logit_diff", thresholds, NO_BEHAVIOUR,
                                    CIRCUIT_READS)
    if without is not None:
        return without
    chosen = choose_and_score(model, every, budget, "denoise", CIRCUIT_FRACTION, thresholds, base)
    base, select, held_out = chosen.baseline, chosen.select, chosen.held_out
    screen, heads, circuit, faith = chosen.screen, chosen.screen.result, chosen.circuit, chosen.faithfulness
    n_heads, k = chosen.n_heads, len(chosen.circuit)
    important = ((heads.values >= IMPORTANT) & screen.exact).nonzero().tolist()
    layers = sorted({a for a, _ in important})
    metrics = {
        **baseline_metrics(base, "corrupt_logit_diff", budget.seed), "faithfulness": faith.faithfulness, "circuit_size": k,
        "circuit_heads": [f"{a}.{b}" for a, b in circuit], "important_heads": [f"{a}.{b}" for a, b in important],
        "layers_with_important_heads": layers, "n_layers_important": len(layers),
        "top_heads": [f"{i[0]}.{i[1]}: {v_:.2f}" for i, v_ in heads.top(6)],
        "n_selection_prompts": len(select), "n_held_out_prompts": len(held_out),
        "n_heads_patched_exactly": screen.n_exact,
    }
    evidence = (
        f"On {base.n_prompts} docstring prompts the answer beats the next undocumented argument in {base.accuracy:.0%} "
        f"of prompts (mean logit diff {base.logit_diff:.2f}). Heads carrying >= {IMPORTANT:.0%} of the effect on the "
        f"selection half: {', '.join(metrics['important_heads']) or 'none'} (layers {layers or '-'}); the top {k} "
        f"heads keep {faith.faithfulness:.0%} of the logit diff on the held-out half with the rest mean-ablated.")
    return Measurement(
        metrics=metrics, key_metric="logit_diff", evidence=evidence, figures=[heads.figure(), faith.figure()],
        method=("Docstring prompts whose next ':param' is the third argument, scored against the fourth (undocumented) "
                "argument of the signature; corrupt prompts rename the signature's arguments; denoising patching of "
                "each head's hook_z (all positions) on the even prompts"
                + (" (attribution-patching screen of every head, the top "
                   f"{screen.n_exact} patched exactly)" if screen.n_exact < n_heads else "") + "; circuit faithfulness with corrupt-mean "
                "ablation of the other heads on the odd prompts."))
