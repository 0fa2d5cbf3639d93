"""C16: LayerNorm does nothing substantial: it can be fine-tuned away (Heimersheim 2024).

Experiment: each norm (every ln2, then every ln1, then the final norm) is replaced one at a time
by a frozen scale per position, its average divisor at that position measured just before, over the
first REMOVAL_FRACTION of the steps, with fine-tuning of all weights in between and after; the
control is a plain fine-tune with the same steps, data and learning rate. gap = held-out CE of the
norm-free model minus the control's. Every step reads fresh windows of the text's training part, at
most MAX_TEXT_PASSES passes over it in all (the full budget's 2000 steps shrink to ~97 on the
bundled sample), and the CE is read on its held-out part. Steps whose loss or gradient is not finite
(a huge-norm token under a frozen scale) are skipped, never taken. On organism:tiny-gpt2 the gap
falls with the fine-tune's length (quick settings: 0.18 nats at 25 steps, 0.08-0.09 at 100 and 150;
full: 0.08), so the quick budget gives small models 100 steps. Larger models get fewer under quick
(6 at 135M parameters), too few to show that the norms resist removal (the gap is then mostly the
freeze cost itself): "not supported" needs a fine-tune of MIN_DECISIVE_STEPS steps or more.

Null: the re-initialised twin. Removing the norms from a network that has learned nothing costs
nothing, so a small gap only means something when the norms mattered: freezing them without
fine-tuning must cost the model clearly more than it costs the twin.

Cost (on the model; the twin's run reads only its freeze cost: the calibrations of the all-at-once freeze
and two held-out CE passes, no fine-tune): two fine-tunes of QUICK_STEPS steps under the quick budget
(forward + backward + AdamW over all weights on 4 x seq_len tokens each: linear in layers x tokens), with
QUICK_STEPS cut to max(MIN_QUICK_STEPS, QUICK_STEP_PARAMS / n_params) on models above 5M parameters (6
on a 135M model), plus one calibration forward per freezing event, stopped at its deepest norm, twice
(all at once, then during the fine-tune): the norms are frozen in at most 2 x budget.max_layers + 1
groups (one norm per group on models with at most max_layers blocks), which keeps the calibrations linear
in depth; plus four held-out CE passes. At the 12-layer 135M shape: 84 CPU s (105 before the calibrations
stopped at their norm).

Numerical safety (real models reach first-token residual norms of ~24,000; a gated MLP without a norm
squares whatever excess a token carries at every block): each norm is frozen to a scale per position
(its average divisor at that position, position 0 included), not one scale for all positions; the
learning rate shrinks with width (1/d_model above d_model 128, as muP does for Adam); a step after which
the loss is not finite is undone with the learning rate halved (lens/norm_removal.py), and a step whose
loss or gradient is still not finite is skipped, the count reported; a held-out prediction whose logits
overflow is charged log(vocab) nats and the overflowing share is reported, so every number is finite.
"""

from __future__ import annotations

import math

from mechscope.claims.base import Budget, Measurement
from mechscope.data.text import eval_token_batches, split_stream, token_stream
from mechscope.lens.norm_removal import NormRemovalConfig, freeze_cost, remove_norms

ID = "C16"
NULL = "twin"
READS = ("gap", "freeze_cost", "overflow_norm_free", "overflow_frozen_untrained", "steps")
NULL_READS = ("freeze_cost", "overflow_frozen_untrained")
FINE_TUNE_READS = ("gap", "overflow_norm_free", "steps")   # the readings the two fine-tunes exist for
QUICK_STEPS = 100   # each of the two fine-tunes under the quick budget (batches of 4 sequences)
QUICK_STEP_PARAMS, MIN_QUICK_STEPS = 5e8, 6   # quick: steps x parameters capped (all 100 steps up to 5M params)
REMOVAL_FRACTION = 0.3   # the norms are frozen over the first 30% of the steps; the rest fine-tune without them
MAX_TEXT_PASSES = 2   # the fine-tunes read the training text at most twice: more passes fit the text, not the norms
NOMINAL_TRAIN_TOKENS = 50_000   # the bundled sample's training part (GPT-2 tokenizer), for the cost estimate
LR_WIDTH = 128     # Adam's step is scaled by min(1, LR_WIDTH / d_model): wide models take smaller steps
SMALL_GAP, LARGE_GAP, MIN_FREEZE_COST = 0.1, 0.5, 0.2
MIN_DECISIVE_STEPS = 50   # a shorter fine-tune cannot show that the norms resist removal
RULE = (f"gap = held-out CE of the norm-free model minus that of a plain fine-tune of equal length; freeze cost = "
        f"CE with every norm frozen before any fine-tuning minus the original CE. Supported if gap ≤ {SMALL_GAP} "
        f"nats while the freeze cost is ≥ {MIN_FREEZE_COST} nats above the re-initialised twin's (the norms did "
        f"something, and fine-tuning took it over); not supported if gap > {LARGE_GAP} nats after a fine-tune of at least "
        f"{MIN_DECISIVE_STEPS} steps; otherwise inconclusive "
        "(a longer fine-tune may close it, or the norms did nothing to remove). A held-out prediction whose logits "
        "overflow is charged log(vocab) nats (the uniform predictor's CE): a norm-free model whose logits overflow on "
        "any held-out prediction is not supported "
        f"(without its norms the network breaks; again only after {MIN_DECISIVE_STEPS} steps or more), and norms whose "
        "freezing overflows the model more often than it "
        "overflows the twin mattered.")


def verdict(metrics: dict, null: dict | None) -> str:
    gap = metrics["gap"]
    if gap > LARGE_GAP or metrics["overflow_norm_free"] > 0:
        return "not supported" if metrics["steps"] >= MIN_DECISIVE_STEPS else "inconclusive"
    mattered = null is not None and (metrics["freeze_cost"] >= null["freeze_cost"] + MIN_FREEZE_COST
                                     or metrics["overflow_frozen_untrained"] > null["overflow_frozen_untrained"])
    return "supported" if gap <= SMALL_GAP and mattered else "inconclusive"


def _finite(x: float) -> float | None:
    return round(x, 4) if math.isfinite(x) else None


def batch_size(budget: Budget) -> int:
    return 4 if budget.name == "quick" else 8


def fine_tune_steps(n_params: int, budget: Budget, train_tokens: int) -> int:
    """Steps of each fine-tune: budget.train_steps (quick: QUICK_STEPS, cut on models above 5M parameters to
    QUICK_STEP_PARAMS / n_params, at least MIN_QUICK_STEPS), and no more than MAX_TEXT_PASSES passes over the
    `train_tokens` of training text. Without that cap the full budget's 2000 steps read the bundled sample's
    training part ~40 times: on organism:tiny-gpt2 the plain fine-tune's held-out CE rose 5.22 -> 7.42 and
    the norm-free one's to 12.88, a "gap" of 5.5 nats that measured overfitting, not the norms."""
    steps = budget.train_steps
    if budget.name == "quick":
        steps = max(MIN_QUICK_STEPS, min(QUICK_STEPS, int(QUICK_STEP_PARAMS / n_params)))
    per_step = batch_size(budget) * budget.seq_len
    return max(1, min(steps, int(MAX_TEXT_PASSES * train_tokens / per_step)))


def measure(model, budget: Budget) -> Measurement:
    quick = budget.name == "quick"
    text = len(split_stream(token_stream(model), "train"))
    steps, batch = fine_tune_steps(model.cfg.n_params, budget, text), batch_size(budget)
    passes = steps * batch * budget.seq_len / text   # over the text's training part
    lr = (1e-3 if quick else 3e-4) * min(1.0, LR_WIDTH / model.cfg.d_model)
    common = dict(seq_len=budget.seq_len, batch_size=batch)
    train = list(eval_token_batches(model, n_sequences=steps * batch, seed=budget.seed + 1,
                                    split="train", **common))   # a fresh window for every sequence of every step
    held_out = list(eval_token_batches(model, n_sequences=budget.n_sequences, seed=budget.seed, split="held_out",
                                       **common))
    groups = None if budget.max_layers is None else 2 * budget.max_layers + 1
    if not budget.reads_any(*FINE_TUNE_READS):   # the twin: what freezing costs, no fine-tune
        return _freeze_cost_only(model, train, held_out, NormRemovalConfig(
            seed=budget.seed, calibration_batches=1 if quick else 2, groups=groups))
    r = remove_norms(model, train, held_out, NormRemovalConfig(
        steps=steps, seed=budget.seed, lr=lr, removal_fraction=REMOVAL_FRACTION,
        calibration_batches=1 if quick else 2, groups=groups))
    skipped = sum(not math.isfinite(x) for x in r.losses_norm_free)
    freeze_cost = r.ce_frozen_untrained - r.ce_original
    return Measurement(
        metrics={"ce_original": _finite(r.ce_original), "ce_control": _finite(r.ce_control),
                 "ce_norm_free": _finite(r.ce_norm_free), "ce_frozen_untrained": _finite(r.ce_frozen_untrained),
                 "gap": _finite(r.gap), "freeze_cost": _finite(freeze_cost), "steps": r.steps,
                 "skipped_non_finite_steps": skipped, "n_norms": len(r.sites), "lr": lr,
                 "text_passes": round(passes, 3),
                 **{f"overflow_{k}": round(v, 4) for k, v in r.overflow.items()}},
        key_metric="gap",
        evidence=(f"Held-out CE: original {r.ce_original:.3f}, all norms frozen without fine-tuning "
                  f"{r.ce_frozen_untrained:.3f} (freeze cost {freeze_cost:+.3f}), plain fine-tune {r.ce_control:.3f}, "
                  f"norm-free fine-tune {r.ce_norm_free:.3f} nats: removing the {len(r.sites)} norms costs "
                  f"{r.gap:+.3f} nats against the control after {r.steps} steps"
                  + (f" ({skipped} steps skipped on a non-finite loss)." if skipped else ".")
                  + (f" Logits overflowed on {r.overflow['norm_free']:.1%} of held-out predictions without norms "
                     f"({r.overflow['frozen_untrained']:.1%} with all norms frozen before fine-tuning); each such "
                     "prediction is charged log(vocab) nats." if r.overflow["norm_free"] or r.overflow["frozen_untrained"] else "")),
        method=(f"Each norm (every ln2, then every ln1, then the final norm) is replaced one at a time by a frozen "
                f"scale per position, its average divisor at that position over data measured just before, over the "
                f"first {REMOVAL_FRACTION:.0%} of the steps, with fine-tuning of all weights in between and after; "
                f"{r.steps} AdamW steps in all (lr {lr:.1e}) on fresh windows of the text's training part "
                f"({passes:.2f} passes over it), gradients clipped to norm "
                "1, steps with a non-finite loss or gradient skipped. The control is a plain fine-tune with the same "
                "steps, data and learning rate. CE on the text's held-out part."),
        figures=[r.figure()],
    )


def _freeze_cost_only(model, train, held_out, cfg: NormRemovalConfig) -> Measurement:
    """The readings before any fine-tuning, for a run that reads none of the fine-tunes' (the twin's)."""
    f = freeze_cost(model, train, held_out, cfg)
    cost = f.ce_frozen_untrained - f.ce_original
    return Measurement(
        metrics={"ce_original": _finite(f.ce_original), "ce_frozen_untrained": _finite(f.ce_frozen_untrained),
                 "freeze_cost": _finite(cost), **{f"overflow_{k}": round(v, 4) for k, v in f.overflow.items()}},
        key_metric="freeze_cost",
        evidence=(f"Held-out CE: original {f.ce_original:.3f}, all norms frozen without fine-tuning "
                  f"{f.ce_frozen_untrained:.3f} nats (freeze cost {cost:+.3f}). No fine-tune was run: this run "
                  "reads only what freezing costs."),
        method="Every norm frozen at its average divisor per position, measured just before; CE on held-out text.")
