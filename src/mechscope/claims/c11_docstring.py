"""C11: docstring argument completion is done by a multi-level attention circuit.

Experiment: docstring prompts (clean) and the same prompts with the signature's argument names
replaced (corrupt). Per-head denoising patching of hook_z gives each head's share of the logit
difference; heads carrying >= 10% are "important"; the circuit is the top 15% of heads and its
faithfulness is measured with every other head mean-ablated (means over the corrupt prompts).
"Multi-level" means the important heads sit in at least two layers.
"""

from __future__ import annotations

from mechscope.claims.base import Budget, ClaimResult
from mechscope.patching.ablation import circuit_faithfulness
from mechscope.patching.activation import activation_patching
from mechscope.tasks.docstring import docstring_task

ID = "C11"
SLUG = "docstring"
TITLE = "Docstring argument completion is done by a multi-level attention circuit"
REFERENCE = "Heimersheim & Janiak 2023 (attn-only-4l: heads 0.5, 1.2, 1.4, 2.0, 3.0, 3.6)"

CIRCUIT_FRACTION, IMPORTANT = 0.15, 0.10
MIN_ACCURACY, MIN_FAITHFUL = 0.8, 0.6
RULE = (f"supported if accuracy (answer above the corrupt signature's name) >= {MIN_ACCURACY:.0%}, the top "
        f"{CIRCUIT_FRACTION:.0%} of heads keep >= {MIN_FAITHFUL:.0%} of the logit diff with the rest mean-ablated, "
        f"and heads with >= {IMPORTANT:.0%} of the effect sit in >= 2 layers; not supported if accuracy < 60% "
        "or all important heads sit in one layer; inconclusive otherwise")


def verdict(accuracy: float, faithfulness: float, n_layers_important: int) -> str:
    if accuracy < 0.6:
        return "not supported"
    if n_layers_important == 1 and accuracy >= MIN_ACCURACY:
        return "not supported"
    if accuracy >= MIN_ACCURACY and faithfulness >= MIN_FAITHFUL and n_layers_important >= 2:
        return "supported"
    return "inconclusive"


def run(model, budget: Budget) -> ClaimResult:
    task = docstring_task(model, n_prompts=budget.n_prompts, seed=budget.seed)
    base = task.baseline(model)
    task = task.subset(slice(0, max(8, budget.n_prompts // 2)))   # patching and ablations: half (time)
    heads = activation_patching(model, task, "z")
    n_heads = model.cfg.n_layers * model.cfg.n_heads
    k = max(2, round(CIRCUIT_FRACTION * n_heads))
    circuit = [idx for idx, _ in heads.top(k)]
    faith = circuit_faithfulness(model, task, circuit)
    important = (heads.values >= IMPORTANT).nonzero().tolist()
    layers = sorted({a for a, _ in important})
    v = verdict(base.accuracy, faith.faithfulness, len(layers))
    metrics = {
        "logit_diff": base.logit_diff, "accuracy": base.accuracy, "top1_accuracy": base.top1_accuracy,
        "corrupt_logit_diff": base.corrupt_metric, "faithfulness": faith.faithfulness, "circuit_size": k,
        "circuit_heads": [f"{a}.{b}" for a, b in circuit], "important_heads": [f"{a}.{b}" for a, b in important],
        "layers_with_important_heads": layers,
        "top_heads": [f"{i[0]}.{i[1]}: {v_:.2f}" for i, v_ in heads.top(6)],
        "n_prompts": base.n_prompts, "n_patching_prompts": len(task),
    }
    evidence = (
        f"On {base.n_prompts} docstring prompts the answer beats the corrupt signature's argument in {base.accuracy:.0%} "
        f"of prompts (mean logit diff {base.logit_diff:.2f}). Heads carrying >= {IMPORTANT:.0%} of the effect: "
        f"{', '.join(metrics['important_heads']) or 'none'} (layers {layers or '-'}); the top {k} heads keep "
        f"{faith.faithfulness:.0%} of the logit diff with the rest mean-ablated.")
    return ClaimResult(
        id=ID, slug=SLUG, title=TITLE, verdict=v, metrics=metrics, key_metric="faithfulness", evidence=evidence,
        rule=RULE, reference=REFERENCE, figures=[heads.figure(), faith.figure()],
        method=("Docstring prompts whose next ':param' is the third argument; corrupt prompts rename the signature's "
                "arguments; denoising patching of each head's hook_z (all positions); circuit faithfulness with "
                "corrupt-mean ablation of the other heads."))
