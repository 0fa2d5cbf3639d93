"""Logits at one position only: run to the final norm, stop, and unembed just that position.

A task reads the logits at its answer position. ``model(tokens)`` would unembed every position
([n pos d_vocab]): on a 50k vocabulary that is about a third of a GPT-2-small forward and a
[256 16 50257] fp32 tensor (800 MB) for a 256-prompt baseline. Here the forward stops once
``ln_final.hook_normalized`` is seen and only the answer position goes through the unembedding
(``model.unembed``, which applies the model's own head and any logit soft-capping), which gives the
same numbers as ``model(tokens)[:, answer_pos]`` (up to float rounding of the smaller matmul).

Usage::

    logits = answer_logits(model, task.clean_tokens, task.answer_pos)              # [n d_vocab]
    logits = answer_logits(model, tokens, -1, fwd={"blocks.0.attn.hook_z": [fn]})  # with hooks
"""

from __future__ import annotations

import torch


class _Stop(Exception):
    """Raised from the final-norm hook: everything the answer position needs has been computed."""


def answer_logits(model, tokens: torch.Tensor, answer_pos: int = -1, fwd: dict | None = None) -> torch.Tensor:
    """Logits [n d_vocab] at `answer_pos` of `tokens` [n pos] (no gradient), with the hooks in `fwd`
    ({name: fn or [fns]}) active."""
    final: dict[str, torch.Tensor] = {}

    def stop(act, _hook):
        final["x"] = act[:, answer_pos]
        raise _Stop

    hooks = {k: list(v) if isinstance(v, list | tuple) else [v] for k, v in (fwd or {}).items()}
    hooks.setdefault("ln_final.hook_normalized", []).append(stop)
    with torch.no_grad(), model.hooks(fwd=hooks):
        try:
            model(tokens.to(model.device))
        except _Stop:
            pass
        return model.unembed(final["x"])


def answer_logits_and_cache(model, tokens: torch.Tensor, answer_pos: int, names: list[str]
                            ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """answer_logits and the activations at `names` (hook names, each [n ...], detached) from the same
    forward: a patching source run and its metric in one pass."""
    store: dict[str, torch.Tensor] = {}

    def save(act, hook):
        store[hook.name] = act.detach()

    logits = answer_logits(model, tokens, answer_pos, fwd={name: [save] for name in names})
    return logits, store
