"""MEMIT: many facts written at once, spread over several MLP layers (Meng et al. 2023).

1. For each fact i, z_i = h_R + δ_i: the residual after the last edited layer R at the subject's
   last token, shifted (`optimize_shift` on ``blocks.R.hook_resid_post``) so the prompts say the
   new target.
2. For each edited layer l in order: K [n d_mlp] keys at the subject's last token (averaged over
   context prefixes, read from the model as edited so far); the remaining residual
   r_i = (z_i - h_R,i) / (layers left that read fact i: whose key of it, before the edit, is not
   zero; a ReLU MLP may not read a fact at all; on a GELU model every layer, as in the reference);
   ΔW_out = (λ C + KᵀK)⁻¹ Kᵀ R, written before moving on.
   λ (`covariance_weight`) weighs keeping E[k kᵀ]'s keys unchanged against fitting the new facts.
"""

from __future__ import annotations

import dataclasses

import torch

from mechscope.errors import InputError
from mechscope.memory.covariance import KeyCovariance, key_covariance
from mechscope.memory.edit import Edit, begin_edit
from mechscope.memory.facts import Rewrite
from mechscope.memory.rome import check_rewrite
from mechscope.memory.targets import (
    ShiftConfig,
    context_prefixes,
    optimize_shift,
    state_at_subject,
    subject_keys,
)
from mechscope.progress import progress


@dataclasses.dataclass
class MemitConfig:
    shift: ShiftConfig = dataclasses.field(default_factory=ShiftConfig)
    covariance_weight: float = 1.0e4   # λ: the reference uses 15000 (GPT-2 XL) with C = E[k kᵀ]
    damping: float = 0.0               # C + damping * mean(diag C) * I (1 when C is zero), as RomeConfig
    n_cov_tokens: int = 100_000
    seed: int = 0


def memit(model, rewrites: list[Rewrite], layers: list[int], config: MemitConfig | None = None,
          covariances: dict[int, KeyCovariance] | None = None) -> Edit:
    """Write every rewrite into the down projections of `layers` (ascending); returns one undoable Edit."""
    config = config or MemitConfig()
    if not rewrites:
        raise InputError("memit needs at least one rewrite")
    layers = sorted(layers)
    edit = begin_edit(model, "MEMIT", layers, [])
    for rw in rewrites:
        check_rewrite(model, rw)
    wanted: dict[str, str] = {}
    for rw in rewrites:
        if wanted.setdefault(rw.fact.prompt, rw.new_target) != rw.new_target:
            raise InputError(f"two rewrites of {rw.fact.prompt!r} ask for {wanted[rw.fact.prompt]!r} and "
                             f"{rw.new_target!r}; give each prompt one new target")
    edit.requests = [{"prompt": rw.fact.prompt, "subject": rw.fact.subject, "old": rw.fact.target,
                      "new": rw.new_target} for rw in rewrites]
    layers = edit.layers
    if covariances is None or any(layer not in covariances for layer in layers):
        covariances = key_covariance(model, layers, config.n_cov_tokens, seed=config.seed)
    prefixes = context_prefixes(model, config.shift)
    facts = [rw.fact for rw in rewrites]
    z_name = f"blocks.{layers[-1]}.hook_resid_post"
    try:
        shifts = [optimize_shift(model, z_name, rw.fact, rw.new_target, prefixes, config.shift)
                  for rw in progress(rewrites, desc="MEMIT targets")]
        z = torch.stack([s.init.double().cpu() + s.delta.double().cpu() for s in shifts])   # [n d_model]
        # [n_layers n]: layers from each one on whose key of the fact is not zero (a ReLU MLP may not read
        # a fact at all): the residual is split over those, not over layers that cannot write it
        reads = torch.stack([subject_keys(model, layer, facts, prefixes, config.shift.position).norm(dim=1) > 0
                             for layer in layers]).double()
        remaining = reads.flip(0).cumsum(0).flip(0).clamp_min(1.0)
        for i, layer in enumerate(layers):
            keys = subject_keys(model, layer, facts, prefixes, config.shift.position)        # [n d_mlp]
            current = state_at_subject(model, z_name, facts, config.shift.position)           # [n d_model]
            residual = (z - current) / remaining[i][:, None]
            c = covariances[layer].second_moment
            if config.damping:
                c = c + config.damping * (float(c.diagonal().mean()) or 1.0) * torch.eye(c.shape[0], dtype=c.dtype)
            lhs = config.covariance_weight * c + keys.T @ keys
            try:
                delta = torch.linalg.solve(lhs, keys.T @ residual)                           # [d_mlp d_model]
            except torch.linalg.LinAlgError:
                raise InputError(f"λC + KᵀK at layer {layer} is singular (units that neither fire on the "
                                 "covariance text nor in these facts' keys); pass a damping > 0, e.g. 1e-3") from None
            edit.add(layer, delta.to(model.W_out.dtype))
    except BaseException:
        edit.undo()
        raise
    edit.details.update({"prefixes": prefixes, "target_probs_during_fit": [s.final_prob for s in shifts], "z": z,
                         "layers_reading": reads.sum(0).tolist()})
    return edit
