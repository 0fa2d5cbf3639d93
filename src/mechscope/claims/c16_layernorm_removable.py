"""C16: LayerNorm does nothing substantial: it can be fine-tuned away (Heimersheim 2024)."""

from __future__ import annotations

from mechscope.claims.base import Budget, ClaimResult
from mechscope.data.text import eval_token_batches
from mechscope.lens.norm_removal import NormRemovalConfig, NormRemovalResult, remove_norms

ID = "C16"
SLUG = "layernorm-removable"
TITLE = "LayerNorm does nothing substantial: it can be fine-tuned away"
REFERENCE = "Heimersheim 2024: +0.05 CE for GPT-2 small; Baroni et al. 2025: 3.0126 → 3.0797"
QUICK_STEPS = 25   # each of the two fine-tunes under the quick budget (batches of 4 sequences)
RULE = ("gap = held-out CE of the norm-free model minus that of a plain fine-tune of equal length: supported "
        "if gap ≤ 0.1 nats; not supported if gap > 0.5 nats; otherwise "
        "inconclusive (a longer fine-tune may close it)")


def rule(r: NormRemovalResult) -> str:
    if r.gap <= 0.1:
        return "supported"
    if r.gap > 0.5:
        return "not supported"
    return "inconclusive"


def run(model, budget: Budget) -> ClaimResult:
    quick = budget.name == "quick"
    steps = QUICK_STEPS if quick else budget.train_steps
    common = dict(seq_len=budget.seq_len, batch_size=4 if quick else 8)
    train = list(eval_token_batches(model, n_sequences=2 * budget.n_sequences, seed=budget.seed + 1, **common))
    held_out = list(eval_token_batches(model, n_sequences=budget.n_sequences, seed=budget.seed, **common))
    r = remove_norms(model, train, held_out, NormRemovalConfig(steps=steps, seed=budget.seed, lr=1e-3 if quick else 3e-4,
                                                                  calibration_batches=1 if quick else 2))
    return ClaimResult(
        ID, SLUG, TITLE, rule(r),
        metrics={"ce_original": round(r.ce_original, 4), "ce_control": round(r.ce_control, 4),
                 "ce_norm_free": round(r.ce_norm_free, 4), "ce_frozen_untrained": round(r.ce_frozen_untrained, 4),
                 "gap": round(r.gap, 4), "steps": r.steps, "n_norms": len(r.sites)},
        key_metric="gap",
        evidence=(f"Held-out CE: original {r.ce_original:.3f}, all norms frozen without fine-tuning "
                  f"{r.ce_frozen_untrained:.3f}, plain fine-tune {r.ce_control:.3f}, norm-free fine-tune "
                  f"{r.ce_norm_free:.3f} nats: removing the {len(r.sites)} norms costs {r.gap:+.3f} nats against "
                  f"the control after {r.steps} steps."),
        method=(f"Each norm (every ln2, then every ln1, then the final norm) is replaced one at a time by a frozen "
                f"scale, its average divisor over data measured just before (position 0 gets its own), with "
                f"fine-tuning of all weights in between; {r.steps} AdamW steps in all. The control is a plain "
                "fine-tune with the same steps, data and learning rate. CE on held-out text."),
        rule=RULE, reference=REFERENCE, figures=[r.figure()],
    )
