"""Stop-gradient views of the forward pass: attention patterns and norm scales frozen for gradients.

Gradient attributions often want the model linearised around the run: attention patterns treated
as constants (gradient flows through the values only) and each norm's divisor treated as a
constant (gradient flows through ``w * (x - mean) / s`` with ``s`` fixed). The forward values
stay exactly those of the run; only the backward pass changes.

    with model.hooks(fwd=frozen_hooks(model, patterns=True, norms=True)):
        logits = model(tokens)          # same values
        logits[0, -1, t].backward()     # gradient of the linearised model

A norm output y = b + w (x - mu) / s is rebuilt as ``y.detach() + (t - t.detach()) / s.detach()``
with ``t = (y - b) * s(x)``: its value is y exactly (``t - t.detach()`` is exactly zero) and its
gradient is ``w (I - centring) / s``, the norm with its scale held fixed. ``b`` is the module
applied to a zero vector, so LayerNorm, RMSNorm and Gemma's (1 + w) RMSNorm need no branches.
The norm input comes from the ``hook_attn_in`` / ``hook_mlp_in`` / ``ln_final.hook_in`` points.
"""

from __future__ import annotations

import torch


def _scale(x: torch.Tensor, kind: str, eps: float) -> torch.Tensor:
    """Differentiable norm divisor [..., d_model] -> [..., 1]."""
    if kind == "layernorm":
        x = x - x.mean(-1, keepdim=True)
    return (x.pow(2).mean(-1, keepdim=True) + eps).sqrt()


def _norm_pair(module: torch.nn.Module, kind: str, eps: float):
    """Two hooks: one on the norm's input (stash x), one on its output (rebuild with frozen scale)."""
    stash: dict[str, torch.Tensor] = {}

    def read(x, hook):
        stash["x"] = x

    def rebuild(y, hook):
        x = stash.pop("x")
        with torch.no_grad():
            bias = module.forward(torch.zeros_like(x[..., :1, :]))  # [... 1 d_model]; .forward skips hooks
        s = _scale(x.to(y.dtype), kind, eps)
        t = (y - bias) * s
        return y.detach() + (t - t.detach()) / s.detach()
    return read, rebuild


def frozen_hooks(model, *, patterns: bool = True, norms: bool = True) -> dict:
    """Forward hooks for ``model.hooks(fwd=...)`` that freeze patterns and/or norm scales for gradients."""
    fwd: dict[str, list] = {}
    if patterns:
        for layer in range(model.cfg.n_layers):
            fwd[f"blocks.{layer}.attn.hook_pattern"] = [lambda p, hook: p.detach()]
    if norms:
        eps_attr = model.table.norm_eps_attr
        sites = [(f"blocks.{L}.hook_attn_in", f"blocks.{L}.ln1.hook_normalized", b.ln1)
                 for L, b in enumerate(model.structure.blocks)]
        sites += [(f"blocks.{L}.hook_mlp_in", f"blocks.{L}.ln2.hook_normalized", b.ln2)
                  for L, b in enumerate(model.structure.blocks)]
        sites.append(("ln_final.hook_in", "ln_final.hook_normalized", model.structure.final_norm))
        for read_name, out_name, module in sites:
            read, rebuild = _norm_pair(module, model.cfg.norm, float(getattr(module, eps_attr, 1e-5)))
            fwd.setdefault(read_name, []).append(read)
            fwd.setdefault(out_name, []).append(rebuild)
    return fwd
