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

import contextlib

import torch


class _Stop(Exception):
    """Raised from the final-norm hook: everything the answer position needs has been computed."""


def forward_to_answer(model, tokens: torch.Tensor, names: list[str], answer_pos: int | torch.Tensor, *,
                      grad: bool | None, vocab: list[int] | torch.Tensor | None = None):
    """Run `tokens` [n pos] until the final norm and unembed only position `answer_pos` (one int for
    every row, or a [n] long tensor: row i at answer_pos[i]).

    Returns (answer logits [n d_vocab], {name: activation} for `names`); with `vocab` (k token ids) the
    logits of those tokens only, [n k] (a task that reads a few candidates skips the rest of the
    unembedding). With grad=True the
    activations stay in the autograd graph (so callers can differentiate the logits with respect to
    them); grad=None leaves autograd as the caller set it (the graph starts at whatever requires grad,
    e.g. a fitted shift added by a hook, and reaches no lower layer); no [n pos d_vocab] tensor is
    ever formed, which matters for large vocabularies.
    """
    acts: dict[str, torch.Tensor] = {}
    final: dict[str, torch.Tensor] = {}

    def save(act, hook):
        acts[hook.name] = act

    def need_grad(act, _hook):
        # if the weights do not require grad, start the graph at the embedding
        return None if act.requires_grad else act.detach().requires_grad_(True)

    def stop(act, _hook):
        per_row = isinstance(answer_pos, torch.Tensor)
        final["x"] = act[torch.arange(act.shape[0]), answer_pos.to(act.device)] if per_row else act[:, answer_pos]
        raise _Stop

    fwd: dict[str, list] = {name: [save] for name in names}
    if grad:
        fwd.setdefault("hook_embed", []).insert(0, need_grad)
    fwd.setdefault("ln_final.hook_normalized", []).append(stop)
    ctx = contextlib.nullcontext() if grad is None else torch.enable_grad() if grad else torch.no_grad()
    with ctx, model.hooks(fwd=fwd):
        try:
            model(tokens)
        except _Stop:
            pass
        logits = model.unembed(final["x"], vocab)
    return logits, acts


def answer_logits(model, tokens: torch.Tensor, answer_pos: int = -1, fwd: dict | None = None) -> torch.Tensor:
    """Logits [n d_vocab] at `answer_pos` of `tokens` [n pos] (no gradient), with the hooks in `fwd`
    ({name: fn or [fns]}) active."""
    with model.hooks(fwd=fwd or {}):
        return forward_to_answer(model, tokens.to(model.device), [], answer_pos, grad=False)[0]


def answer_logits_and_cache(model, tokens: torch.Tensor, answer_pos: int, names: list[str]
                            ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """answer_logits and the activations at `names` (hook names, each [n ...], detached) from the same
    forward: a patching source run and its metric in one pass."""
    return forward_to_answer(model, tokens.to(model.device), names, answer_pos, grad=False)
