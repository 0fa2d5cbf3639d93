"""How good is a transcoder: splice it in place of its MLP and measure what the model loses.

    result = evaluate_transcoder(tc, model, tokens)      # an SAEEvaluation
    result.fvu, result.ce_loss_recovered, result.kl_with_sae

The MLP output (`tc.cfg.output_hook_name`) is replaced by the transcoder's prediction from the MLP
input (`tc.cfg.hook_name`) captured in the same forward. FVU compares the prediction with the true
MLP output; CE loss recovered = (CE_zero - CE_tc) / (CE_zero - CE_clean) with CE_zero the model with
that MLP's output zeroed (SAEBench / Dunefsky et al. convention); KL is KL(clean || spliced).
"""

from __future__ import annotations

import torch
from torch import Tensor

from mechscope.dictionary.evaluate import SAEEvaluation, _finish, _ReconstructionTotals, spliced_ce
from mechscope.dictionary.latent_stats import LatentStats
from mechscope.errors import InputError


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

    def capture(act, hook):
        stash["x"] = act

    def replace(act, hook):
        x = stash.pop("x")
        latents = tc.encode(x)
        y_hat = tc.decode(latents) + tc.skip(x)
        totals.add(act.reshape(-1, tc.d_in), y_hat.reshape(-1, tc.d_in), latents.reshape(-1, tc.d_sae))
        stats.update((latents.reshape(-1, tc.d_sae) > 0).sum(0), latents.shape[0] * latents.shape[1])
        return y_hat.to(act.dtype)

    ce = spliced_ce(model, tokens, {in_name: capture, out_name: replace}, out_name, batch_size)
    tc.train(was_training)
    return _finish(tc, totals, stats, hook_name=out_name, **ce)


@torch.no_grad()
def transcoder_fvu(transcoders, model, tokens: Tensor, batch_size: int = 8) -> list[float]:
    """FVU of each transcoder (an iterable) on tokens [n_seq seq], every layer's from one forward per batch.

    Each transcoder reads the clean model's MLP input, as when it alone is spliced in
    (`evaluate_transcoder`), so the numbers are the same; without the spliced and ablated forwards that
    CE loss recovered needs (three per transcoder), a 12-layer model's FVUs cost one forward instead of 36.
    """
    from mechscope.dictionary.transcoder import harvest_pairs

    transcoders = list(transcoders)
    pairs = harvest_pairs(model, tokens, transcoders, batch_size)
    out = []
    for tc in transcoders:
        x, y = pairs[tc.cfg.hook_name], pairs[tc.cfg.output_hook_name]
        totals = _ReconstructionTotals()
        for xb, yb in zip(x.split(4096), y.split(4096), strict=True):
            latents = tc.encode(xb.to(tc.W_enc.dtype))
            totals.add(yb, tc.decode(latents) + tc.skip(xb.to(tc.W_enc.dtype)), latents)
        out.append(totals.metrics()["fvu"])
    return out
