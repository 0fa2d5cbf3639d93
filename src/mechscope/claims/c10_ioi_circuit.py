"""C10: a small set of heads implements indirect object identification.

Experiment: IOI prompts (ABBA and BABA), metric logit(IO) - logit(S). Heads are ranked by their
total effect (noising hook_z with the ABC set, every position at once); the circuit is the top
15% of heads; faithfulness = logit diff with every other head mean-ablated (means over the ABC
set) / logit diff of the full model. Also: direct effect on the logits by path patching, and
name-mover scores (attention END -> IO x direct logit effect).
"""

from __future__ import annotations

import math

from mechscope.attention.name_movers import name_mover_scores
from mechscope.claims.base import Budget, ClaimResult
from mechscope.patching.ablation import circuit_faithfulness
from mechscope.patching.activation import PatchingConfig, activation_patching
from mechscope.patching.path import path_patching
from mechscope.tasks.ioi import ioi_task

ID = "C10"
SLUG = "ioi-circuit"
TITLE = "A small set of heads implements indirect object identification"
REFERENCE = "Wang et al. 2022: logit diff 3.56, 99.3% correct, circuit 87% faithful"

CIRCUIT_FRACTION = 0.15
MIN_ACCURACY, MIN_LOGIT_DIFF, MIN_FAITHFUL = 0.9, 1.0, 0.6
RULE = (f"supported if the model gets IOI right (accuracy >= {MIN_ACCURACY:.0%}, mean logit diff >= {MIN_LOGIT_DIFF}) "
        f"and the top {CIRCUIT_FRACTION:.0%} of heads by total effect, with all other heads mean-ablated, keep "
        f">= {MIN_FAITHFUL:.0%} of the logit diff; not supported if accuracy < 70% or that circuit keeps < 30%; "
        "inconclusive otherwise")


def verdict(accuracy: float, logit_diff: float, faithfulness: float) -> str:
    if accuracy < 0.7 or (not math.isnan(faithfulness) and faithfulness < 0.3):
        return "not supported"
    if accuracy >= MIN_ACCURACY and logit_diff >= MIN_LOGIT_DIFF and faithfulness >= MIN_FAITHFUL:
        return "supported"
    return "inconclusive"


def run(model, budget: Budget) -> ClaimResult:
    task = ioi_task(model, n_prompts=budget.n_prompts, seed=budget.seed, corrupt="abc")
    base = task.baseline(model)
    task = task.subset(slice(0, max(8, budget.n_prompts // 2)))   # patching and ablations: half (time)
    total = activation_patching(model, task, "z", PatchingConfig(direction="noise"))
    n_heads = model.cfg.n_layers * model.cfg.n_heads
    k = max(2, round(CIRCUIT_FRACTION * n_heads))
    circuit = [idx for idx, _ in total.top(k)]
    faith = circuit_faithfulness(model, task, circuit)
    direct = path_patching(model, task)
    movers = name_mover_scores(model, task)
    v = verdict(base.accuracy, base.logit_diff, faith.faithfulness)
    metrics = {
        "logit_diff": base.logit_diff, "accuracy": base.accuracy, "top1_accuracy": base.top1_accuracy,
        "abc_logit_diff": base.corrupt_metric, "faithfulness": faith.faithfulness, "circuit_size": k,
        "n_heads": n_heads, "circuit_heads": [f"{a}.{b}" for a, b in circuit],
        "circuit_logit_diff": faith.circuit_metric, "all_heads_ablated_logit_diff": faith.ablated_all_metric,
        "top_total_effect_heads": [f"{i[0]}.{i[1]}: {v_:.2f}" for i, v_ in total.top(5)],
        "top_direct_effect_heads": [f"{i[0]}.{i[1]}: {v_:.2f}" for i, v_ in direct.top(5)],
        "top_name_mover_heads": [f"{a}.{b}: {s:.2f}" for a, b, s in movers.as_head_scores().top(3)],
        "n_prompts": base.n_prompts, "n_patching_prompts": len(task),
        "templates": sorted(set(task.labels["template"].tolist())),
    }
    evidence = (
        f"On {base.n_prompts} IOI prompts the mean logit diff IO - S is {base.logit_diff:.2f} with {base.accuracy:.0%} "
        f"of prompts correct (ABC set: {base.corrupt_metric:.2f}). The {k} heads with the largest total effect "
        f"({', '.join(metrics['circuit_heads'][:6])}{'...' if k > 6 else ''}) keep {faith.faithfulness:.0%} of the "
        f"logit diff when all other heads are mean-ablated. Largest direct effects: "
        f"{', '.join(metrics['top_direct_effect_heads'][:3])}.")
    return ClaimResult(
        id=ID, slug=SLUG, title=TITLE, verdict=v, metrics=metrics, key_metric="faithfulness", evidence=evidence,
        rule=RULE, reference=REFERENCE,
        figures=[total.figure(), direct.figure(), movers.figure(), faith.figure()],
        method=("IOI prompts from BABA/ABBA templates (the organism's ground truth or generic English names that "
                "are single tokens); noising activation patching of each head's hook_z with the ABC set; circuit = "
                f"top {CIRCUIT_FRACTION:.0%} of heads; faithfulness with ABC-mean ablation of all other heads; path "
                "patching heads -> logits (other heads and MLPs frozen); name-mover scores."))
