"""C20: SAEs decompose activations into sparse features, imperfectly.

SAEs are trained on the residual stream (a middle layer with the quick budget, every layer with the
full one) from one shared activation stream over ordinary text, several architectures at once, then
spliced back into the model on held-out text: L0, explained variance, CE loss recovered, KL and
dead latents per layer and architecture.
"""

from __future__ import annotations

import math

import torch

from mechscope.claims.base import Budget, ClaimResult
from mechscope.data.text import eval_tokens
from mechscope.dictionary.evaluate import SAEEvaluation, evaluate_sae
from mechscope.dictionary.pipeline import SAEPipelineConfig, train_on_model
from mechscope.dictionary.trainer import TrainerConfig

ID = "C20"
SLUG = "sae-decomposition"
TITLE = "SAEs decompose activations into sparse, more interpretable features, imperfectly"
REFERENCE = "Bricken et al. 2023; Gao et al. 2024; GPT-2 small residual SAEs (Bloom): L0 10–70 by layer"
RULE = ("Inconclusive if the model's CE is above 90% of log(vocab) or zero-ablating the stream costs < 0.1 nats "
        "(nothing to recover). Read the TopK SAE (k = d_model/16, 8× expansion) at each evaluated layer and take the "
        "median over layers. Supported if its explained variance is ≥ 0.6 and its CE loss recovered ≥ 0.5 with L0 ≤ d_model/8 "
        "(sparse and faithful) while CE loss recovered < 0.995 or explained variance < 0.995 (imperfect); "
        "not supported if explained variance < 0.3 or CE loss recovered < 0.2; otherwise inconclusive.")
SAE_ARCHS_QUICK = ("topk",)
SAE_ARCHS_FULL = ("topk", "batch_topk", "relu_l1", "jumprelu")


def rule(ev: float, ce_recovered: float, l0: float, d_model: int, ce_clean: float, ce_zero: float,
         d_vocab: int) -> str:
    if ce_clean > 0.9 * math.log(d_vocab) or ce_zero - ce_clean < 0.1:
        return "inconclusive"
    if math.isnan(ce_recovered):
        ce_recovered = 0.0
    if ev < 0.3 or ce_recovered < 0.2:
        return "not supported"
    faithful = ev >= 0.6 and ce_recovered >= 0.5 and l0 <= d_model / 8
    imperfect = ce_recovered < 0.995 or ev < 0.995
    return "supported" if faithful and imperfect else "inconclusive"


def _median(values: list[float]) -> float:
    return float(torch.tensor(values, dtype=torch.float64).median()) if values else math.nan


def run(model, budget: Budget) -> ClaimResult:
    d = model.cfg.d_model
    n_layers = model.cfg.n_layers
    layers = [n_layers // 2] if budget.name == "quick" else list(range(n_layers))
    archs = SAE_ARCHS_QUICK if budget.name == "quick" else SAE_ARCHS_FULL
    hooks = [f"blocks.{layer}.hook_resid_post" for layer in layers]
    seq_len = min(budget.seq_len, model.cfg.n_ctx)
    train_tokens = eval_tokens(model, seq_len=seq_len, n_sequences=8 * budget.n_sequences, seed=budget.seed + 1)
    held_out = eval_tokens(model, seq_len=seq_len, n_sequences=budget.n_sequences, seed=budget.seed)
    k = max(4, d // 16)
    batch = min(512, train_tokens.numel() // 2)
    cfg = SAEPipelineConfig(hooks=tuple(hooks), architectures=archs, expansion_factor=8, k=k, dead_after_tokens=50_000,
                            batch_size=batch, activations="memory", shuffle_buffer_tokens=1 << 14, seed=budget.seed)
    saes, training = train_on_model(model, train_tokens, cfg,
                                    TrainerConfig(steps=budget.train_steps, lr=1e-3, warmup_steps=10))
    layer_of = dict(zip(hooks, layers, strict=True))
    saes = {f"{sae.cfg.architecture}@{layer_of[sae.cfg.hook_name]}": sae for sae in saes.values()}
    results: dict[str, SAEEvaluation] = {name: evaluate_sae(sae, model, held_out) for name, sae in saes.items()}
    topk = [results[f"topk@{layer}"] for layer in layers]
    ev, ce_rec, l0 = (_median([getattr(r, f) for r in topk]) for f in ("explained_variance", "ce_loss_recovered", "l0"))
    ce_clean, ce_zero = (_median([getattr(r, f) for r in topk]) for f in ("ce_clean", "ce_zero_ablation"))
    verdict = rule(ev, ce_rec, l0, d, ce_clean, ce_zero, model.cfg.d_vocab)
    per = {name: {"layer": int(name.split("@")[1]), "architecture": name.split("@")[0], "l0": round(r.l0, 2),
                  "explained_variance": round(r.explained_variance, 4), "fvu": round(r.fvu, 4),
                  "mse": round(r.mse, 6), "ce_loss_recovered": round(r.ce_loss_recovered, 4),
                  "kl_with_sae": round(r.kl_with_sae, 4), "ce_clean": round(r.ce_clean, 4),
                  "ce_with_sae": round(r.ce_with_sae, 4), "ce_zero_ablation": round(r.ce_zero_ablation, 4),
                  "dead_fraction": round(r.dead_fraction, 4), "dense_fraction": round(r.dense_fraction, 4)}
           for name, r in results.items()}
    return ClaimResult(
        ID, SLUG, TITLE, verdict,
        metrics={"topk_explained_variance": round(ev, 4), "topk_ce_loss_recovered": round(ce_rec, 4),
                 "topk_l0": round(l0, 2), "ce_clean": round(ce_clean, 4), "ce_zero_ablation": round(ce_zero, 4),
                 "layers": layers, "d_sae": 8 * d, "k": k,
                 "train_tokens": int(train_tokens.numel()), "train_steps": budget.train_steps,
                 "eval_tokens": int(held_out.numel()), "per_sae": per},
        key_metric="topk_ce_loss_recovered",
        evidence=(f"A TopK SAE with {8 * d} latents and L0 {l0:.0f} explains {ev:.1%} of the residual-stream variance "
                  f"(median over layers {layers}) and recovers {ce_rec:.1%} of the CE loss lost by zero-ablating the "
                  "stream; " + "; ".join(f"{n}: EV {r.explained_variance:.2f}, CE rec {r.ce_loss_recovered:.2f}, "
                                         f"L0 {r.l0:.0f}, dead {r.dead_fraction:.0%}" for n, r in results.items())
                  + "."),
        method=(f"Residual stream after blocks {layers} on {train_tokens.numel()} tokens of the bundled text; "
                f"SAEs {list(archs)} (8× expansion, TopK k={k}) trained together for {budget.train_steps} steps of "
                f"{batch} tokens from one shuffled activation stream; evaluated by splicing each SAE's "
                f"reconstruction into the forward pass on {held_out.numel()} held-out tokens."),
        rule=RULE, reference=REFERENCE,
        figures=[training.figure()] + [r.figure() for r in topk],
    )
