"""The measured numerical effect of running a model in half precision, for the report's run section.

The same tokens go through the model loaded in float32 and in the half dtype; the logits are compared
in float32: the largest |Δlogit|, the mean KL(fp32 ‖ half) of the next-token distributions, the
fraction of positions whose top-1 token agrees, and whether every half logit is finite.

    ref = reference_logits(load_fp32(), tokens)          # [batch pos vocab] on CPU, then free the model
    effect = precision_effect(ref, half_model, tokens)   # {"max_abs_dlogit": 0.03, "mean_kl": 1e-5, ...}

The float32 reference is loaded first and released before the half model loads, so peak memory is
one model (in float32) plus the [batch pos vocab] logits of a few prompts.
"""

from __future__ import annotations

import torch
from torch import Tensor


def reference_logits(model, tokens: Tensor, batch_size: int = 4) -> Tensor:
    """Float32 logits [batch pos vocab] of `tokens` [batch pos], on CPU."""
    with torch.no_grad():
        return torch.cat([model(chunk.to(model.device)).float().cpu() for chunk in tokens.split(batch_size)])


def compare_logits(reference: Tensor, other: Tensor) -> dict[str, float | int | bool]:
    """How far `other` [batch pos vocab] is from `reference` (same shape), both read in float32."""
    ref, oth = reference.float(), other.float()
    finite = bool(torch.isfinite(oth).all())
    delta = (oth - ref).abs()
    log_p, log_q = ref.log_softmax(-1), oth.log_softmax(-1)
    kl = (log_p.exp() * (log_p - log_q)).sum(-1)            # [batch pos]
    return {
        "max_abs_dlogit": float(delta.max()),
        "mean_abs_dlogit": float(delta.mean()),
        "mean_kl": float(kl.mean()),
        "max_kl": float(kl.max()),
        "top1_agreement": float((ref.argmax(-1) == oth.argmax(-1)).float().mean()),
        "n_positions": int(kl.numel()),
        "finite": finite,
    }


def precision_effect(reference: Tensor, model, tokens: Tensor, batch_size: int = 4) -> dict:
    """`compare_logits` of `model` (in its own dtype) on `tokens` against the float32 `reference`,
    with the dtype named."""
    effect = compare_logits(reference, reference_logits(model, tokens, batch_size))
    return {"dtype": str(model.dtype).replace("torch.", ""), "reference": "float32", **effect}
