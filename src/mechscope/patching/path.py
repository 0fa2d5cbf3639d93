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


class _Stop(Exception):
    pass


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


def _answer_logits(model, tokens: torch.Tensor, fwd: dict, answer_pos: int) -> torch.Tensor:
    final = {}

    def stop(act, _hook):
        final["x"] = act[:, answer_pos]
        raise _Stop

    fwd = {k: list(v) for k, v in fwd.items()}
    fwd.setdefault("ln_final.hook_normalized", []).append(stop)
    with torch.no_grad(), model.hooks(fwd=fwd):
        try:
            model(tokens)
        except _Stop:
            pass
        return model.unembed(final["x"])


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
    base, source = runs_for(task, config.direction)
    device = model.device
    base, source = base.to(device), source.to(device)
    n = base.shape[0]
    z_names = [f"blocks.{layer}.attn.hook_z" for layer in range(cfg.n_layers)]
    mlp_names = [f"blocks.{layer}.hook_mlp_out" for layer in range(cfg.n_layers)] if freeze_mlps else []
    with torch.no_grad():
        clean_logits = model(task.clean_tokens.to(device))[:, task.answer_pos].float()
        corrupt_logits = model(task.corrupt_tokens.to(device))[:, task.answer_pos].float()
        _, base_cache = model.run_with_cache(base, names=z_names + mlp_names)
        _, source_cache = model.run_with_cache(source, names=z_names)
    clean = task.score(clean_logits, reference_logits=clean_logits).mean().item()
    corrupt = task.score(corrupt_logits, reference_logits=clean_logits).mean().item()
    per_chunk = max(1, config.max_rows // n)
    patched = torch.full((cfg.n_layers, cfg.n_heads), float("nan"))
    for start in range(0, len(senders), per_chunk):
        chunk = senders[start:start + per_chunk]
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
        logits = _answer_logits(model, tokens, step2, task.answer_pos)
    else:
        captured: dict[str, torch.Tensor] = {}

        def capture(act, hook):
            captured[hook.name] = act.detach().clone()

        for layer, _h, which in receivers:
            step2.setdefault(f"blocks.{layer}.attn.hook_{which}", []).insert(0, capture)
        _answer_logits(model, tokens, step2, task.answer_pos)

        heads_by_name: dict[str, list[int]] = {}
        group = cfg.n_heads // cfg.n_kv_heads
        for layer, h, which in receivers:
            name = f"blocks.{layer}.attn.hook_{which}"
            heads_by_name.setdefault(name, []).append(h if which == "q" else h // group)
        step3 = {name: [patch_from(captured, heads=sorted(set(hs)))] for name, hs in heads_by_name.items()}
        logits = _answer_logits(model, tokens, step3, task.answer_pos)
    scores = task.score(logits, prompt_index, reference_logits=clean_logits).reshape(S, n).mean(1)
    return scores.tolist()
