"""C19: the residual stream holds internal variables such as ABBA vs BABA name order.

Experiment: a linear probe (ridge, held-out accuracy, shuffled-label control) for the order label
at every layer's resid_pre and every position of one IOI template. At layer 0 the residual is
just embeddings of random names, so no position can know the order: that row is the control.
Then patching separates how the order is passed on: resid_pre at S2 and END, layer by layer, is
patched from a prompt with the names swapped (position signal changes) or renamed (token signal
changes); the loss of logit diff under each says which signal the model reads.
"""

from __future__ import annotations

from mechscope.claims.base import Budget, ClaimResult
from mechscope.patching.signals import order_probe, position_vs_token

ID = "C19"
SLUG = "abba-baba"
TITLE = "The residual stream holds internal variables such as ABBA vs BABA order"
REFERENCE = "Wang et al. 2022; Merullo et al. 2024"

STRONG, WEAK, GAIN, CONTROL_MAX = 0.9, 0.7, 0.3, 0.7
RULE = (f"supported if a probe at some layer >= 1 reads the order with held-out accuracy >= {STRONG:.0%} and "
        f">= {GAIN:.0%} above its shuffled-label control, while at layer 0 no position exceeds {CONTROL_MAX:.0%}; "
        f"not supported if no layer >= 1 reaches {WEAK:.0%}; inconclusive otherwise")


def verdict(best: float, best_control: float, layer0_max: float) -> str:
    if best < WEAK:
        return "not supported"
    if best >= STRONG and best - best_control >= GAIN and layer0_max <= CONTROL_MAX:
        return "supported"
    return "inconclusive"


def run(model, budget: Budget) -> ClaimResult:
    probe = order_probe(model, n_prompts=max(96, 4 * budget.n_prompts), seed=budget.seed)
    layer, pos, best = probe.best(min_layer=1)
    control = float(probe.control[layer, pos])
    layer0 = float(probe.accuracy[0].max())
    signals = position_vs_token(model, n_prompts=budget.n_prompts, seed=budget.seed)
    v = verdict(best, control, layer0)
    summary = {f"{kind}@{where}": [round(x, 3) for x in vals.tolist()]
               for kind, by in signals.effect.items() for where, vals in by.items()}
    metrics = {
        "best_probe_accuracy": best, "best_layer": layer, "best_position": probe.pos_labels[pos],
        "best_control_accuracy": control, "layer0_max_accuracy": layer0,
        "probe_accuracy_by_layer": probe.accuracy.max(1).values.tolist(),
        "signal_patching_effect_by_layer": summary, "clean_logit_diff": signals.clean_logit_diff,
        "n_probe_prompts": probe.n_prompts,
    }
    evidence = (
        f"A linear probe reads ABBA vs BABA order with {best:.0%} held-out accuracy at layer {layer}, position "
        f"{probe.pos_labels[pos]!r} (shuffled-label control {control:.0%}; best at layer 0: {layer0:.0%}). "
        f"Patching resid_pre from name-swapped vs renamed prompts (fraction of logit diff lost, by layer): "
        + "; ".join(f"{k}: {max(v_, key=abs) if v_ else 0:.2f} max" for k, v_ in summary.items()) + ".")
    return ClaimResult(
        id=ID, slug=SLUG, title=TITLE, verdict=v, metrics=metrics, key_metric="best_probe_accuracy",
        evidence=evidence, rule=RULE, reference=REFERENCE, figures=[probe.figure(), signals.figure()],
        method=("IOI prompts from one template, half ABBA and half BABA; ridge probe per (layer, position) on "
                "resid_pre (70/30 split, balanced classes) with a shuffled-label control; noising patches of "
                "resid_pre at S2 and END from order-swapped and renamed counterfactuals."))
