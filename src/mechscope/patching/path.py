"""Path patching (Wang et al. 2022; Goldowsky-Dill et al. 2023): the effect of one head on another
head's input (or on the logits directly), with every other path held fixed.

For each sender head, on the base run:

1. patch the sender's output (hook_z) from the source run and freeze every other head's output
   at its base value (MLPs recompute, as in the IOI paper; for the "logits" receiver MLPs are
   frozen too, so the effect is the direct path only); record the receivers' inputs (their
   q, k or v);
2. run the base prompt again with only the receivers' inputs replaced by the recorded ones, and
   read the metric.

The default is noising (base = clean, source = corrupt, e.g. the ABC set), as in the IOI paper;
values are the fraction of the clean-corrupt gap lost through the path:
(clean - patched) / (clean - corrupt). All senders run at once: each is a block of batch rows.

Usage::

    direct = path_patching(model, task)                                    # senders -> logits
    to_movers = path_patching(model, task, receivers=[(3, 0, "q"), (3, 5, "q")])
"""

from __future__ import annotations

import dataclasses

import torch

from mechscope.errors import InputError
from mechscope.model.axes import write
from mechscope.model.interventions import patch_from
from mechscope.model.names import parse
from mechscope.patching.activation import runs_for
from mechscope.patching.results import PatchingResult
from mechscope.tasks.answer import answer_logits, answer_logits_and_cache


class _Frozen:
    """The step-2 activations of a chunk of senders, by hook name: the base run's, tiled once per
    sender (each sender a block of n rows), with each sender's own head taken from the source run.
    Built when a hook asks for it, so only one layer's tensor is alive at a time."""

    def __init__(self, base_cache, source_cache, chunk: list[tuple[int, int]], repeats: int) -> None:
        self.base, self.source, self.chunk, self.repeats = base_cache, source_cache, chunk, repeats

    def __getitem__(self, name: str) -> torch.Tensor:
        base = self.base[name]
        n = base.shape[0]
        frozen = base.repeat(self.repeats, *[1] * (base.dim() - 1))
        point = parse(name)
        if point.site == "attn.hook_z":
            for b, (layer, h) in enumerate(self.chunk):
                if layer == point.layer:
                    write(frozen, self.source[name], point, heads=h, rows=slice(b * n, (b + 1) * n))
        return frozen


@dataclasses.dataclass
class PathPatchingConfig:
    direction: str = "noise"
    freeze_mlps: bool | None = None    # None: True for the "logits" receiver, False otherwise
    max_rows: int = 512


def path_patching(model, task, receivers: str | list[tuple[int, int, str]] = "logits",
                  senders: list[tuple[int, int]] | None = None,
                  config: PathPatchingConfig | None = None) -> PatchingResult:
    """Path-patching effect of each sender head through `receivers`.

    receivers: "logits" (direct effect) or [(layer, head, "q" | "k" | "v"), ...] (patched together).
    senders: [(layer, head)]; default every head. Returns values [n_layers n_heads] (NaN for heads
    that are not senders).
    """
    config = config or PathPatchingConfig()
    cfg = model.cfg
    if senders is None:
        senders = [(layer, h) for layer in range(cfg.n_layers) for h in range(cfg.n_heads)]
    to_logits = receivers == "logits"
    if not to_logits:
        for r in receivers:
            if len(r) != 3 or r[2] not in ("q", "k", "v"):
                raise InputError(f"a receiver is (layer, head, 'q'|'k'|'v'); got {r!r}")
    freeze_mlps = to_logits if config.freeze_mlps is None else config.freeze_mlps
    runs_for(task, config.direction)                    # checks the direction
    base_is_clean = config.direction == "noise"
    base = (task.clean_tokens if base_is_clean else task.corrupt_tokens).to(model.device)
    n = base.shape[0]
    z_names = [f"blocks.{layer}.attn.hook_z" for layer in range(cfg.n_layers)]
    mlp_names = [f"blocks.{layer}.hook_mlp_out" for layer in range(cfg.n_layers)] if freeze_mlps else []
    direct = to_logits and freeze_mlps
    direct_names = [f"blocks.{cfg.n_layers - 1}.hook_resid_post", *_attn_out_names(cfg)] if direct else []
    base_names = z_names + mlp_names + direct_names
    clean_logits, clean_cache = answer_logits_and_cache(model, task.clean_tokens, task.answer_pos,
                                                        base_names if base_is_clean else z_names)
    corrupt_logits, corrupt_cache = answer_logits_and_cache(model, task.corrupt_tokens, task.answer_pos,
                                                            z_names if base_is_clean else base_names)
    clean_logits, corrupt_logits = clean_logits.float(), corrupt_logits.float()
    base_cache, source_cache = (clean_cache, corrupt_cache) if base_is_clean else (corrupt_cache, clean_cache)
    clean = task.score(clean_logits, reference_logits=clean_logits).mean().item()
    corrupt = task.score(corrupt_logits, reference_logits=clean_logits).mean().item()
    per_chunk = max(1, config.max_rows // n)
    patched = torch.full((cfg.n_layers, cfg.n_heads), float("nan"))
    linear = direct and _attn_out_is_linear_in_z(model, base_cache, task.answer_pos)
    for start in range(0, len(senders), per_chunk):
        chunk = senders[start:start + per_chunk]
        if linear:
            scores = _direct_chunk(model, task, chunk, base_cache, source_cache, clean_logits)
        else:
            scores = _run_chunk(model, task, base, chunk, receivers, base_cache, source_cache, z_names, mlp_names,
                                clean_logits)
        for (layer, h), s in zip(chunk, scores, strict=True):
            patched[layer, h] = s
    gap = clean - corrupt
    values = (clean - patched) / gap if config.direction == "noise" else (patched - corrupt) / gap
    label = "logits" if to_logits else ", ".join(f"{layer}.{h}.{w}" for layer, h, w in receivers)
    return PatchingResult(task=task.name, site=f"path: heads -> {label}", direction=config.direction,
                          metric=task.metric, axes=("layer", "head"), values=values, patched_metric=patched,
                          clean_metric=clean, corrupt_metric=corrupt, n_prompts=len(task))


def _run_chunk(model, task, base, chunk, receivers, base_cache, source_cache, z_names, mlp_names,
               clean_logits) -> list[float]:
    cfg = model.cfg
    n, S = base.shape[0], len(chunk)
    tokens = base.repeat(S, 1)
    prompt_index = torch.arange(n).repeat(S)

    frozen = patch_from(_Frozen(base_cache, source_cache, chunk, S))
    step2 = {name: [frozen] for name in z_names + mlp_names}
    if receivers == "logits":
        logits = answer_logits(model, tokens, task.answer_pos, fwd=step2)
    else:
        captured: dict[str, torch.Tensor] = {}

        def capture(act, hook):
            captured[hook.name] = act.detach().clone()

        for layer, _h, which in receivers:
            step2.setdefault(f"blocks.{layer}.attn.hook_{which}", []).insert(0, capture)
        answer_logits(model, tokens, task.answer_pos, fwd=step2)

        heads_by_name: dict[str, list[int]] = {}
        group = cfg.n_heads // cfg.n_kv_heads
        for layer, h, which in receivers:
            name = f"blocks.{layer}.attn.hook_{which}"
            heads_by_name.setdefault(name, []).append(h if which == "q" else h // group)
        step3 = {name: [patch_from(captured, heads=sorted(set(hs)))] for name, hs in heads_by_name.items()}
        logits = answer_logits(model, tokens, task.answer_pos, fwd=step3)
    scores = task.score(logits, prompt_index, reference_logits=clean_logits).reshape(S, n).mean(1)
    return scores.tolist()


def _attn_out_names(cfg) -> list[str]:
    return [f"blocks.{layer}.hook_attn_out" for layer in range(cfg.n_layers)]


def _attn_out_is_linear_in_z(model, cache, answer_pos: int) -> bool:
    """True when every block's attention output at the answer position is sum_h z_h W_O[h] + b_O (no
    norm or gate after the output projection), checked on the cached base run; then the direct path
    to the logits can be computed without a forward (see _direct_chunk)."""
    rtol = 1e-3 if model.dtype == torch.float32 else 3e-2
    W_O, b_O = model.W_O.float(), model.b_O.float()
    for layer in range(model.cfg.n_layers):
        z = cache[f"blocks.{layer}.attn.hook_z"][:, answer_pos].float()                # [n H d_head]
        rebuilt = torch.einsum("nhd,hdm->nm", z, W_O[layer]) + b_O[layer]               # [n d_model]
        actual = cache[f"blocks.{layer}.hook_attn_out"][:, answer_pos].float()
        if not bool(((rebuilt - actual).norm(dim=-1) <= rtol * actual.norm(dim=-1) + 1e-5).all()):
            return False
    return True


def _direct_chunk(model, task, chunk, base_cache, source_cache, clean_logits) -> list[float]:
    """Scores of the sender -> logits paths of `chunk` without a forward pass.

    With every head's z and every MLP output frozen at the base run's, the final residual stream of
    a sender's path-patched run is the base run's plus the change of that one head's output,
    (z_source - z_base) W_O[layer, head], when attention outputs are linear in z (checked by
    _attn_out_is_linear_in_z). Only the final norm and the unembedding are recomputed: the same
    numbers as the frozen forward of _run_chunk.
    """
    L, pos = model.cfg.n_layers, task.answer_pos
    n = clean_logits.shape[0]
    resid = base_cache[f"blocks.{L - 1}.hook_resid_post"][:, pos]                       # [n d_model]
    W_O = model.W_O
    deltas = []
    for layer, h in chunk:
        name = f"blocks.{layer}.attn.hook_z"
        dz = source_cache[name][:, pos, h] - base_cache[name][:, pos, h]                 # [n d_head]
        deltas.append(dz @ W_O[layer, h].to(dz.dtype).detach())
    with torch.no_grad():
        final = model.ln_final(resid[None] + torch.stack(deltas))                        # [S n d_model]
        logits = model.unembed(final.reshape(-1, final.shape[-1]))
    scores = task.score(logits, torch.arange(n).repeat(len(chunk)), reference_logits=clean_logits)
    return scores.reshape(len(chunk), n).mean(1).tolist()
