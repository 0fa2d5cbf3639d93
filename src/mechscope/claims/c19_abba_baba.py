"""C19: the residual stream holds internal variables such as ABBA vs BABA name order.

Experiment: a linear probe (ridge, balanced classes, 70/30 split) for the order label at every
layer's resid_pre and every position of one IOI template; the statistic is the best held-out
accuracy over all cells of layers >= 1. At layer 0 the residual is just embeddings of random names,
so no position can know the order: that row is a control too. Then patching separates how the order
is passed on: resid_pre at S2 and END, layer by layer, is patched from a prompt with the names
swapped (position signal changes) or renamed (token signal changes).

Null: the statistic built the same way under shuffled labels: every cell refitted on permuted
labels and the best cell kept, for each of several permutations; the rule reads the largest. A
best-of-many-cells statistic compared with one cell's control would favour the model.

Cost (no twin: the null is in the model's own metrics): one forward of N_PROMPTS prompts, then
(B + 1) x n_pos x (2 + NULL_SHUFFLES) ridge fits, B = min(n_layers, budget.max_layers) layers spread
over the depth (layer 0, the control, always among them; the statistic and its null maximise over the
same cells); patching of resid_pre at S2 and END at those B layers from two counterfactuals on
budget.n_prompts prompts (half of them on models deeper than max_layers: the rule does not read it),
each patched run from its layer on: linear in layers under quick. On gpt2-small (quick, 1 thread,
before this halving): 56 CPU s, of which the probes' forward ~28%, the ridge fits ~26%, the patching ~41%.
"""

from __future__ import annotations

from mechscope.claims.base import Budget, Measurement
from mechscope.patching.signals import order_probe, position_vs_token

ID = "C19"
NULL = ("shuffled labels, maximised like the statistic: the best held-out accuracy over every cell of layers "
        ">= 1 when the probes are refitted on permuted order labels (largest over the permutations)")
READS = ("best_probe_accuracy", "null_best_accuracy", "layer0_max_accuracy")

STRONG, WEAK, GAIN, CONTROL_MAX = 0.9, 0.7, 0.15, 0.75
N_PROMPTS, NULL_SHUFFLES = 256, 4
RULE = (f"supported if the best probe over layers >= 1 reads the order with held-out accuracy >= {STRONG:.0%} and "
        f">= {GAIN:.0%} above the best cell under shuffled labels, while at layer 0 no position exceeds "
        f"{CONTROL_MAX:.0%}; not supported if the best probe is below {WEAK:.0%} or does not beat the shuffled-label "
        "best cell by the margin; inconclusive otherwise")


def verdict(metrics: dict, null: dict | None) -> str:
    best, null_best = metrics["best_probe_accuracy"], metrics["null_best_accuracy"]
    if best < WEAK or best < null_best + GAIN:
        return "not supported"
    if best >= STRONG and metrics["layer0_max_accuracy"] <= CONTROL_MAX:
        return "supported"
    return "inconclusive"


def measure(model, budget: Budget) -> Measurement:
    layers = budget.layers(model.cfg.n_layers)
    probe = order_probe(model, n_prompts=N_PROMPTS, seed=budget.seed, null_shuffles=NULL_SHUFFLES,
                        control_shuffles=1, layers=layers)
    layer, pos, best = probe.best(min_layer=1)
    null_best = max(probe.null_max)
    layer0 = float(probe.accuracy[probe.row(0)].max())
    deep = budget.max_layers is not None and model.cfg.n_layers > budget.max_layers
    signals = position_vs_token(model, n_prompts=budget.n_prompts // 2 if deep else budget.n_prompts,
                                seed=budget.seed, layers=layers)
    summary = {f"{kind}@{where}": [round(x, 3) for x in vals.tolist()]
               for kind, by in signals.effect.items() for where, vals in by.items()}
    metrics = {
        "best_probe_accuracy": best, "best_layer": layer, "best_position": probe.pos_labels[pos],
        "null_best_accuracy": null_best, "null_best_by_shuffle": [round(v, 4) for v in probe.null_max],
        "best_cell_control_accuracy": float(probe.control[probe.row(layer), pos]), "layer0_max_accuracy": layer0,
        "probe_accuracy_by_layer": probe.accuracy.max(1).values.tolist(), "probed_layers": probe.layers,
        "signal_patching_effect_by_layer": summary, "clean_logit_diff": signals.clean_logit_diff,
        "n_probe_prompts": probe.n_prompts,
    }
    evidence = (
        f"A linear probe reads ABBA vs BABA order with {best:.0%} held-out accuracy at layer {layer}, position "
        f"{probe.pos_labels[pos]!r}; the best cell under shuffled labels reaches {null_best:.0%} and the best "
        f"cell at layer 0 {layer0:.0%}. Patching resid_pre from name-swapped vs renamed prompts (fraction of logit "
        "diff lost, by layer): "
        + "; ".join(f"{k}: {max(v_, key=abs) if v_ else 0:.2f} max" for k, v_ in summary.items()) + ".")
    return Measurement(
        metrics=metrics, key_metric="best_probe_accuracy", null_key="null_best_accuracy", evidence=evidence,
        figures=[probe.figure(), signals.figure()],
        method=(f"{probe.n_prompts} IOI prompts from one template, half ABBA and half BABA; ridge probe per (layer, "
                "position) on resid_pre (70/30 split, balanced classes); the null refits every cell on "
                f"{NULL_SHUFFLES} label permutations and keeps each one's best cell; noising patches of resid_pre "
                "at S2 and END from order-swapped and renamed counterfactuals."))
