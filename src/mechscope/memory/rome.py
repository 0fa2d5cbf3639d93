"""ROME: a rank-one edit of one MLP down projection (Meng et al. 2022).

1. k* = the down projection's input at the subject's last token, averaged over context prefixes.
2. v* = W k* + δ, δ the shift of the MLP output there that makes the prompts say the new target
   (`mechscope.memory.targets.optimize_shift`, with the KL and norm constraints).
3. ΔW = (v* - W k*) (C⁻¹k*)ᵀ / (k*ᵀ C⁻¹ k*), C = E[k kᵀ] at that layer. So W' k* = v* exactly,
   rank ΔW = 1, and ΔW k = 0 for every key with kᵀ C⁻¹ k* = 0.

(Paper layout: W [d_model d_mlp] acting as W k; stored here in the W_out view's [d_mlp d_model]
layout, ΔW_out = (C⁻¹k*) (v* - W k*)ᵀ / (k*ᵀ C⁻¹ k*).) The reference code divides by the key at the
plain prompt instead of k*; we follow the paper's formula, which makes W' k* = v* exact.

Where to edit: at the position and layer where causal tracing finds the MLP's effect (on the
4-layer organism:tiny-gpt2 that is the last token, layer 3, not the subject's last token, whose
restored state brings back almost nothing). Small models may stop recalling a fact after the
sampled prefixes (tiny-gpt2: top-1 recall 0.2-0.87 under them); then k* and v* read there are
not the fact's, and ``ShiftConfig(n_prefixes=0)`` (the plain prompt) edits it better, and a v* fitted
to a looser loss (stop_loss 0.5) flips fewer neighbours. bench/bench_memory.py measures each change.
"""

from __future__ import annotations

import dataclasses

import torch

from mechscope.errors import InputError
from mechscope.memory.covariance import KeyCovariance, key_covariance
from mechscope.memory.edit import Edit, apply_edit, validate_layers
from mechscope.memory.facts import Rewrite
from mechscope.memory.prompts import subject_span, target_id
from mechscope.memory.targets import ShiftConfig, context_prefixes, optimize_shift, subject_keys


@dataclasses.dataclass
class RomeConfig:
    shift: ShiftConfig = dataclasses.field(default_factory=ShiftConfig)
    n_cov_tokens: int = 100_000   # tokens for C when no covariance is given
    damping: float = 0.0          # C + damping * mean(diag C) * I before solving
    seed: int = 0                 # seed of the covariance text windows


def check_rewrite(model, rewrite: Rewrite) -> None:
    """Every input error before any work: subject in the prompt, one-token targets."""
    subject_span(model, rewrite.fact.prompt, rewrite.fact.subject)
    target_id(model, rewrite.new_target)
    target_id(model, rewrite.fact.target)


def rank_one_update(w_out: torch.Tensor, k_star: torch.Tensor, v_star: torch.Tensor,
                    covariance: KeyCovariance, damping: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(ΔW_out [d_mlp d_model], u = C⁻¹k* [d_mlp]) in float64. w_out: [d_mlp d_model]; k*: [d_mlp]; v*: [d_model]."""
    w = w_out.double()
    u = covariance.solve(k_star.double(), damping)
    denominator = u @ k_star.double()
    if not bool(denominator.abs() > 0) or not bool(torch.isfinite(denominator)):
        raise InputError(f"the key k* at layer {covariance.layer} is {'zero' if not k_star.any() else 'degenerate'} "
                         f"(k*ᵀC⁻¹k* = {float(denominator):.3g}): no unit there reads this fact; edit another layer "
                         "or position")
    residual = v_star.double() - k_star.double() @ w
    return torch.outer(u, residual) / denominator, u


def rome(model, rewrite: Rewrite, layer: int, config: RomeConfig | None = None,
         covariance: KeyCovariance | None = None, prefixes: list[str] | None = None) -> Edit:
    """Edit `layer`'s down projection so the fact answers rewrite.new_target; returns an undoable Edit.
    prefixes: `context_prefixes(model, config.shift)` when already sampled (they depend on the model and
    config only, so many edits can share one draw)."""
    config = config or RomeConfig()
    (layer,) = validate_layers(model, [layer])
    check_rewrite(model, rewrite)
    if covariance is None:
        covariance = key_covariance(model, layer, config.n_cov_tokens, seed=config.seed)
    prefixes = context_prefixes(model, config.shift) if prefixes is None else prefixes
    k_star = subject_keys(model, layer, [rewrite.fact], prefixes, config.shift.position)[0]
    shift = optimize_shift(model, f"blocks.{layer}.hook_mlp_out", rewrite.fact, rewrite.new_target, prefixes,
                           config.shift)
    w_out = model.W_out[layer]
    v_star = k_star @ w_out.double() + shift.delta.double().cpu()
    delta, u = rank_one_update(w_out, k_star, v_star, covariance, config.damping)
    request = {"prompt": rewrite.fact.prompt, "subject": rewrite.fact.subject, "old": rewrite.fact.target,
               "new": rewrite.new_target}
    return apply_edit(model, "ROME", {layer: delta.to(w_out.dtype)}, [request],
                      details={"k_star": k_star, "v_star": v_star, "u": u, "losses": shift.losses,
                               "prefixes": prefixes, "target_prob_during_fit": shift.final_prob})
