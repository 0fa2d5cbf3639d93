"""How good is a transcoder: splice it in place of its MLP and measure what the model loses.

    result = evaluate_transcoder(tc, model, tokens)      # an SAEEvaluation
    result.fvu, result.ce_loss_recovered, result.kl_with_sae

The MLP output (`tc.cfg.output_hook_name`) is replaced by the transcoder's prediction from the MLP
input (`tc.cfg.hook_name`) captured in the same forward. FVU compares the prediction with the true
MLP output; CE loss recovered = (CE_zero - CE_tc) / (CE_zero - CE_clean) with CE_zero the model with
that MLP's output zeroed (SAEBench / Dunefsky et al. convention); KL is KL(clean || spliced).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mechscope.dictionary.evaluate import SAEEvaluation, _finish, _next_token_ce, _ReconstructionTotals
from mechscope.dictionary.latent_stats import LatentStats
from mechscope.errors import InputError
from mechscope.model.interventions import zero_ablate


@torch.no_grad()
def evaluate_transcoder(tc, model, tokens: Tensor, batch_size: int = 8) -> SAEEvaluation:
    """All metrics of transcoder `tc` spliced into `model` over tokens [n_seq seq] (no padding)."""
    in_name, out_name = tc.cfg.hook_name, tc.cfg.output_hook_name
    if not (in_name and out_name):
        raise InputError("the transcoder needs both hook_name (MLP input) and output_hook_name (MLP output)")
    was_training = tc.training
    tc.eval()
    totals, stats = _ReconstructionTotals(), LatentStats(tc.d_sae)
    stash: dict[str, Tensor] = {}
    ce = {"clean": 0.0, "tc": 0.0, "zero": 0.0}
    kl_sum, n_pred = 0.0, 0

    def capture(act, hook):
        stash["x"] = act

    def replace(act, hook):
        x = stash.pop("x")
        latents = tc.encode(x)
        y_hat = tc.decode(latents) + tc.skip(x)
        totals.add(act.reshape(-1, tc.d_in), y_hat.reshape(-1, tc.d_in), latents.reshape(-1, tc.d_sae))
        stats.update((latents.reshape(-1, tc.d_sae) > 0).sum(0), latents.shape[0] * latents.shape[1])
        return y_hat.to(act.dtype)

    for batch in tokens.split(batch_size):
        batch = batch.to(model.device)
        clean = model(batch)
        with model.hooks(fwd={in_name: capture, out_name: replace}):
            spliced = model(batch)
        with model.hooks(fwd={out_name: zero_ablate()}):
            zeroed = model(batch)
        for key, logits in (("clean", clean), ("tc", spliced), ("zero", zeroed)):
            ce[key] += float(_next_token_ce(logits, batch).sum())
        logp_clean = clean[:, :-1].float().log_softmax(-1)
        logp_tc = spliced[:, :-1].float().log_softmax(-1)
        kl_sum += float((logp_clean.exp() * (logp_clean - logp_tc)).sum())
        n_pred += batch.shape[0] * (batch.shape[1] - 1)
    tc.train(was_training)
    ce_clean, ce_tc, ce_zero = (ce[k] / max(n_pred, 1) for k in ("clean", "tc", "zero"))
    gap = ce_zero - ce_clean
    recovered = (ce_zero - ce_tc) / gap if abs(gap) > 1e-9 else math.nan
    return _finish(tc, totals, stats, hook_name=out_name, ce_clean=ce_clean, ce_with_sae=ce_tc,
                   ce_zero_ablation=ce_zero, ce_loss_recovered=recovered, kl_with_sae=kl_sum / max(n_pred, 1))
