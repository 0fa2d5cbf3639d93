"""C01: the residual stream accumulates the prediction layer by layer (logit lens and tuned lens).

Experiment: the logit lens (final norm + unembedding) after every block, and a tuned lens (one
affine translator per layer, zero-initialised, trained to minimise KL to the final distribution),
both read on held-out text: KL to the final distribution and CE, layer by layer.

Null: the uniform predictor. A network that has learned nothing also "converges" on its own final
distribution layer by layer (a re-initialised twin's KL curve falls too), so the curve says nothing
until the model predicts: its CE must sit >= 1 nat below log(vocab), where a re-initialised network
sits (measured: the twins of tiny-gpt2 and stories260K are within 0.05 nats of it). Measuring the
twin itself would cost a second tuned-lens training run and add nothing the rule reads.

Cost (no twin run): one forward over 2 x n_sequences x seq_len training tokens
to cache the residuals at P points, P = min(n_layers + 1, budget.max_layers) evenly spaced
(embed and final always in); then QUICK_STEPS steps of P x 128 tokens x d_model x V' unembedding,
forward and backward, with V' = min(d_vocab, QUICK_VOCAB) under quick (a sampled-vocabulary KL for
training only: lens/sampled_vocab.py); then two forwards over the held-out tokens and 2 x P exact
full-vocabulary unembeddings for the numbers the rule reads. Linear in layers (capped at P) and tokens.
"""

from __future__ import annotations

import math

from mechscope.claims.base import Budget, Measurement
from mechscope.data.text import eval_token_batches
from mechscope.lens.logit_lens import LogitLensConfig
from mechscope.lens.tuned_training import (
    TunedLensTrainConfig,
    compare_lenses,
    train_tuned_lens,
)

ID = "C01"
NULL = ("the uniform predictor: CE = log(vocab), where a re-initialised network sits; the model must be 1 nat "
        "below it before its lens curve is read")
READS = ("model_ce", "log_vocab", "tuned_lens_kl", "tuned_beats_logit_everywhere")
QUICK_STEPS = 60   # tuned-lens training steps under the quick budget
QUICK_VOCAB = 4096   # tokens in the sampled training vocabulary under the quick budget (exact KL when larger)
CE_MARGIN = 1.0   # nats the model's CE must sit below log(vocab)
RULE = ("inconclusive if the model's own CE is above 90% of log(vocab) or not ≥ 1 nat below log(vocab), the CE "
        "of the uniform predictor and of a re-initialised network (no prediction to accumulate), or it has a single "
        "block; supported if the tuned-lens KL to the "
        "final distribution never rises by more than 5% from one layer to the next, ends below half its "
        "embedding value, and the tuned lens is at or below the logit lens at every layer; not supported if the "
        "tuned-lens KL before the last block is not below its embedding value; otherwise inconclusive")


def verdict(metrics: dict, null: dict | None) -> str:
    kl = metrics["tuned_lens_kl"][:-1]
    ce = metrics["model_ce"]
    if ce > 0.9 * metrics["log_vocab"] or ce > metrics["log_vocab"] - CE_MARGIN or len(kl) < 2:
        return "inconclusive"
    if kl[-1] >= kl[0]:
        return "not supported"
    monotone = all(b <= a * 1.05 + 1e-6 for a, b in zip(kl, kl[1:], strict=False))
    if monotone and kl[-1] < 0.5 * kl[0] and metrics["tuned_beats_logit_everywhere"]:
        return "supported"
    return "inconclusive"


def measure(model, budget: Budget) -> Measurement:
    common = dict(seq_len=budget.seq_len, batch_size=8)
    train = list(eval_token_batches(model, n_sequences=2 * budget.n_sequences, seed=budget.seed + 1, split="train",
                                    **common))
    held_out = list(eval_token_batches(model, n_sequences=budget.n_sequences, seed=budget.seed, split="held_out",
                                       **common))
    quick = budget.name == "quick"
    points = budget.layers(model.cfg.n_layers + 1)   # residual points: embed, after block 0, ...
    train_cfg = TunedLensTrainConfig(steps=QUICK_STEPS if quick else budget.train_steps,
                                     tokens_per_step=128 if quick else 512, lr=2e-3 if quick else 1e-3,
                                     seed=budget.seed, points=tuple(points),
                                     vocab_sample=QUICK_VOCAB if quick else None)
    lens, training = train_tuned_lens(model, train, train_cfg)
    cmp, logit, tuned = compare_lenses(model, lens, held_out, LogitLensConfig(), points=points)
    mid = len(cmp.layer_labels) // 2
    return Measurement(
        metrics={
            "layers": cmp.layer_labels,
            "logit_lens_kl": [round(v, 4) for v in cmp.logit_kl],
            "tuned_lens_kl": [round(v, 4) for v in cmp.tuned_kl],
            "logit_lens_ce": [round(v, 4) for v in cmp.logit_ce],
            "tuned_lens_ce": [round(v, 4) for v in cmp.tuned_ce],
            "model_ce": round(cmp.final_ce, 4), "log_vocab": round(math.log(model.cfg.d_vocab), 4),
            "tuned_beats_logit_everywhere": cmp.tuned_wins_everywhere,
            "tuned_kl_mid": round(cmp.tuned_kl[mid], 4),
            "logit_top1_agreement": [round(v, 3) for v in logit.top1_agreement],
            "train_steps": training.steps, "n_tokens": logit.n_tokens,
            "train_vocab": min(model.cfg.d_vocab, train_cfg.vocab_sample or model.cfg.d_vocab),
        },
        key_metric="model_ce", null_key="log_vocab",
        evidence=(f"KL to the final distribution falls from {cmp.logit_kl[0]:.2f} nats at the embedding to "
                  f"{cmp.logit_kl[-2]:.2f} after block {cmp.layer_labels[-2]} under the logit lens, and from "
                  f"{cmp.tuned_kl[0]:.2f} to {cmp.tuned_kl[-2]:.2f} under the tuned lens; the tuned lens is "
                  f"{'at or below' if cmp.tuned_wins_everywhere else 'not everywhere below'} the logit lens "
                  f"(model CE {cmp.final_ce:.2f} nats)."),
        method=(f"Logit lens: the model's final norm and unembedding applied to the residual stream at "
                f"{len(points)} of the {model.cfg.n_layers + 1} residual points (embed, after blocks "
                f"{', '.join(cmp.layer_labels[1:])}), on {logit.n_tokens} held-out next-token predictions. "
                f"Tuned lens: one affine translator h + A h + b per point, zero-initialised, trained "
                f"{training.steps} steps with Adam to minimise KL to the final distribution on separate text"
                + (f" (KL on a sampled vocabulary of {QUICK_VOCAB} tokens: each step's top-{train_cfg.vocab_top_k} "
                   f"final tokens plus uniform draws)" if quick and QUICK_VOCAB < model.cfg.d_vocab else "")
                + "; every number shown is the exact full-vocabulary KL on the same held-out tokens."),
        figures=[cmp.figure(), logit.figure()],
    )
