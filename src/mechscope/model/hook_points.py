"""Attaching hook functions to the HF modules that produce each hook point.

A `HookSet` holds the functions for one context (``model.hooks(...)`` or one ``run_with_cache``).
An `Attachment` installs, for exactly the hook points in a HookSet, the PyTorch module hooks that
surface them, and removes every one on exit, exceptions included. Nothing is attached for points
nobody asked for, so an un-hooked forward is the plain HF forward.

Where each point comes from (module paths come from the architecture table):

    hook_embed / hook_pos_embed     output of the embedding modules
    hook_resid_pre                  input of decoder block L (forward pre-hook)
    hook_resid_post                 output of decoder block L
    ln1/ln2/ln_final.hook_normalized  output of the norm module; hook_scale is computed from its input
    hook_attn_in / hook_mlp_in /    input of the ln1 / ln2 / final norm module (forward pre-hook), handed
      ln_final.hook_in              to hooks as a view: the norm is the sublayer's only reader, so a
                                    replacement reaches that sublayer alone, and a gradient taken with
                                    respect to it counts only the path through that sublayer
    hook_q_input / hook_k_input /   hook_attn_in copied per head; the q / k / v projections are rebuilt from
      hook_v_input                  the copies (forward hooks on them; mechscope.model.split_qkv)
    attn.hook_q ... hook_z          inside our attention function (mechscope.model.attention)
    attn.hook_result                computed from the output projection's input; if a hook replaces it,
                                    the projection's output becomes sum over heads + bias
    hook_attn_out                   output of the attention module (or of the table's attn_out_module)
    hook_resid_mid                  resid_pre + attn_out, formed in the attention module's hook; a
                                    replacement is passed on as a changed attn_out (new_mid - resid_pre)
    mlp.hook_pre / hook_post        output of the MLP's in (gate) projection / input of its out projection
                                    (a fused [gate | up] projection: its gate half)
    hook_mlp_out                    output of the MLP module (or of the table's mlp_out_module)
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable

import torch

from mechscope.errors import BatchGrowthError, HookShapeError, InputError, InterventionError
from mechscope.model import shared_norm, split_qkv
from mechscope.model.adapters import ArchitectureTable
from mechscope.model.attention import STATE_ATTR
from mechscope.model.flat_mlp import MLP_SIDE, Unflattened, record_batch_pos
from mechscope.model.names import ATTN_INTERNAL, HookPoint, parse
from mechscope.model.norms import norm_eps, norm_scale
from mechscope.model.structure import Structure

HookFn = Callable[[torch.Tensor, HookPoint], "torch.Tensor | None"]


class HookSet:
    """Forward and backward hook functions keyed by hook name, applied in the order added."""

    def __init__(self) -> None:
        self.fwd: dict[str, list[HookFn]] = defaultdict(list)
        self.bwd: dict[str, list[HookFn]] = defaultdict(list)
        self._points: dict[str, HookPoint] = {}

    def add(self, name: str, fn: HookFn, *, backward: bool = False) -> None:
        point = self._points.setdefault(name, parse(name))
        if isinstance(fn, GrowBatch) and (backward or point.site != "hook_resid_pre"):
            raise InterventionError(f"GrowBatch hooks add rows at a block's input: put it on a forward "
                                    f"blocks.L.hook_resid_pre, not on {name} ({'backward' if backward else 'forward'})")
        (self.bwd if backward else self.fwd)[name].append(fn)

    @property
    def names(self) -> set[str]:
        return set(self.fwd) | set(self.bwd)

    def apply(self, name: str, act: torch.Tensor) -> torch.Tensor:
        point = self._points[name]
        for fn in self.fwd.get(name, ()):
            out = fn(act, point)
            if out is None:
                continue
            if point.site.endswith("hook_scale"):
                raise InputError(f"{name} is observe-only: its hook must return None (change "
                                 f"the norm's input or output hook instead)")
            _check_replacement(name, out, act, new_rows=isinstance(fn, GrowBatch))
            act = out
        if name in self.bwd and act.requires_grad:
            for fn in self.bwd[name]:
                act.register_hook(_backward_call(fn, point))
        return act


class GrowBatch:
    """A hook on ``blocks.L.hook_resid_pre`` that may return more batch rows than it receives.

    Batched patching uses it to run many patched copies of a prompt from layer L onward only: the
    rows below L are computed once. Sound only when the block's other inputs broadcast over the
    batch; if the block receives a per-row tensor (a padding mask, say), the forward raises
    `BatchGrowthError` and the caller must add its rows at the model's input instead.
    """

    def __init__(self, fn: HookFn) -> None:
        self.fn = fn

    def __call__(self, act: torch.Tensor, hook: HookPoint) -> torch.Tensor | None:
        return self.fn(act, hook)


def _check_replacement(name: str, out, act: torch.Tensor, *, new_rows: bool = False) -> None:
    """A hook's replacement must be a tensor like the activation it replaces (shape, dtype, device);
    a GrowBatch hook's may differ in its number of rows."""
    if not isinstance(out, torch.Tensor):
        raise HookShapeError(f"hook on {name} returned {type(out).__name__}, expected a tensor of shape "
                             f"{tuple(act.shape)} (or None to leave the activation unchanged)")
    expected = (out.shape[0], *act.shape[1:]) if new_rows and out.dim() == act.dim() else tuple(act.shape)
    if tuple(out.shape) != expected:
        raise HookShapeError(f"hook on {name} returned {tuple(out.shape)}, expected a tensor of shape "
                             f"{expected} (or None to leave the activation unchanged)")
    if out.dtype != act.dtype or out.device != act.device:
        raise HookShapeError(f"hook on {name} returned a {out.dtype} tensor on {out.device}, but the activation is "
                             f"{act.dtype} on {act.device}: return out.to(act.device, act.dtype)")


def _backward_call(fn: HookFn, point: HookPoint):
    def call(grad: torch.Tensor):
        out = fn(grad, point)
        if out is not None and out.shape != grad.shape:
            raise HookShapeError(f"backward hook on {point.name} returned shape {tuple(out.shape)}, "
                                 f"expected {tuple(grad.shape)}")
        return out
    return call


def _first(x):
    return x[0] if isinstance(x, tuple) else x


def _with_first(x, new):
    return (new, *x[1:]) if isinstance(x, tuple) else new


def _check_broadcastable(name: str, args: tuple, kwargs: dict, rows: int) -> None:
    """Raise BatchGrowthError if a block input besides the residual stream has one entry per row."""
    if rows == 1:
        return
    for value in (*args, *(v for k, v in kwargs.items() if k != "hidden_states")):
        for t in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(t, torch.Tensor) and t.dim() >= 2 and t.shape[0] == rows:
                raise BatchGrowthError(f"{name}: the block also receives a per-row tensor of shape "
                                       f"{tuple(t.shape)}, so rows cannot be added inside the model; add "
                                       f"them at the input instead (repeat the tokens)")


@dataclasses.dataclass
class _AttnHooks:
    """Set as STATE_ATTR on an attention module; our attention function calls `call`."""

    entries: list[tuple[HookSet, str]]   # (hookset, "blocks.L.attn.hook_") per active attachment
    query_scale: float | None = None     # the factor the module already multiplied its queries by (OPT)

    def call(self, short: str, act: torch.Tensor) -> torch.Tensor:
        for hookset, prefix in self.entries:
            name = prefix + short
            if name in hookset.fwd or name in hookset.bwd:
                act = hookset.apply(name, act)
        return act


class Attachment:
    """Context manager: install the module hooks a HookSet needs; always remove them on exit."""

    def __init__(self, structure: Structure, hookset: HookSet, table: ArchitectureTable, *, cfg) -> None:
        self.s, self.hs, self.n_heads, self.table, self.cfg = structure, hookset, cfg.n_heads, table, cfg
        self.norm, self.eps_attr = table.norm, table.norm_eps_attr
        self.out_proj_is_conv1d, self.query_scale_attr = table.out_proj_is_conv1d, table.query_prescaled_attr
        self.gate_up_fused, self.mlp_flat = table.mlp_gate_up_fused, table.mlp_flattens_positions
        self._handles: list = []
        self._attn_modules: list[torch.nn.Module] = []

    # -- small factories for the module hooks ---------------------------------------------------
    def _on_output(self, name: str, hs=None):
        hs = hs or self.hs

        def hook(_module, _args, output):
            new = hs.apply(name, _first(output))
            return _with_first(output, new)
        return hook

    def _on_input(self, name: str, stash: dict | None = None, hs=None):
        hs = hs or self.hs

        def hook(_module, args, kwargs):
            old = args[0] if args else kwargs["hidden_states"]
            new = hs.apply(name, old)
            if new.shape[0] != old.shape[0]:       # a GrowBatch hook added rows
                _check_broadcastable(name, args[1:], kwargs, old.shape[0])
            if stash is not None:
                stash["resid_pre"] = new
            if args:
                return (new, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": new}
        return hook

    def _on_gate_half(self, name: str, hs=None):
        """Output hook on a fused [gate | up] projection: the hook sees the gate half. The output is
        always rebuilt from the (possibly replaced) half, so the half is in the autograd graph."""
        hs = hs or self.hs

        def hook(_module, _args, output):
            gate, up = output.chunk(2, dim=-1)
            return torch.cat([hs.apply(name, gate), up], dim=-1)
        return hook

    def _on_read(self, name: str, hs=None, stash: dict | None = None):
        """Pre-hook on a norm module: its input, as a fresh view, is the sublayer's own copy (also left
        in `stash` under split_qkv.ATTN_IN_KEY when given)."""
        hs = hs or self.hs

        def hook(_module, args, kwargs):
            x = shared_norm.first_input(args, kwargs)
            new = hs.apply(name, x.view_as(x))
            if stash is not None:
                stash[split_qkv.ATTN_IN_KEY] = new
            return shared_norm.with_first_input(args, kwargs, new)
        return hook

    def _on_norm(self, prefix: str, module: torch.nn.Module, wanted: set[str], hs=None):
        hs, kind = hs or self.hs, self.norm
        eps = norm_eps(module, self.eps_attr)
        scale_name, normed_name = prefix + "hook_scale", prefix + "hook_normalized"

        def hook(_module, args, output):
            if scale_name in wanted:
                hs.apply(scale_name, norm_scale(args[0], kind, eps).to(args[0].dtype))
            if normed_name in wanted:
                return _with_first(output, hs.apply(normed_name, _first(output)))
            return None
        return hook

    def _on_attn(self, layer: int, wanted: set[str], stash: dict):
        hs = self.hs
        out_name, mid_name = f"blocks.{layer}.hook_attn_out", f"blocks.{layer}.hook_resid_mid"

        def hook(_module, _args, output):
            attn_out = _first(output)
            if out_name in wanted:
                attn_out = hs.apply(out_name, attn_out)
            if mid_name in wanted:
                resid_pre = stash["resid_pre"]
                mid = resid_pre + attn_out
                new_mid = hs.apply(mid_name, mid)
                if new_mid is not mid:
                    attn_out = new_mid - resid_pre
            return _with_first(output, attn_out)
        return hook

    def _on_out_proj(self, layer: int):
        hs, n_heads, conv1d = self.hs, self.n_heads, self.out_proj_is_conv1d
        name = f"blocks.{layer}.attn.hook_result"

        def hook(module, args, output):
            z = args[0]
            w = module.weight if conv1d else module.weight.T          # [n_heads*d_head, d_model]
            w_o = w.reshape(n_heads, -1, w.shape[-1])                  # [head d_head d_model]
            z = z.reshape(*z.shape[:-1], n_heads, -1)                  # [batch pos head d_head]
            result = torch.einsum("bphd,hdm->bphm", z, w_o)
            new = hs.apply(name, result)
            if new is result:
                return None
            bias = module.bias if module.bias is not None else 0.0
            return new.sum(-2) + bias
        return hook

    # -- install / remove -----------------------------------------------------------------------
    def __enter__(self) -> Attachment:
        try:
            self._install()
        except BaseException:
            self._remove()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._remove()

    def _install(self) -> None:
        s, wanted, add = self.s, self.hs.names, self._handles.append
        by_layer: dict[int, set[str]] = defaultdict(set)
        for name in wanted:
            point = parse(name)
            if point.layer is not None:
                by_layer[point.layer].add(point.site)
        if "hook_embed" in wanted:
            add(s.embed.register_forward_hook(self._on_output("hook_embed")))
        if "hook_pos_embed" in wanted and s.pos_embed is not None:
            add(s.pos_embed.register_forward_hook(self._on_output("hook_pos_embed")))
        if "ln_final.hook_in" in wanted:
            add(s.final_norm.register_forward_pre_hook(self._on_read("ln_final.hook_in"), with_kwargs=True))
        if wanted & {"ln_final.hook_scale", "ln_final.hook_normalized"}:
            add(s.final_norm.register_forward_hook(self._on_norm("ln_final.", s.final_norm, wanted)))
        for layer, sites in sorted(by_layer.items()):
            self._install_block(layer, sites, wanted)

    def _install_block(self, layer: int, sites: set[str], wanted: set[str]) -> None:
        b, add, pre = self.s.blocks[layer], self._handles.append, f"blocks.{layer}."
        stash: dict = {}
        if sites & {"hook_resid_pre", "hook_resid_mid"}:
            name = pre + "hook_resid_pre"
            if name not in wanted:  # resid_mid needs resid_pre: capture it without a user hook
                self.hs._points.setdefault(name, parse(name))
            add(b.block.register_forward_pre_hook(self._on_input(name, stash), with_kwargs=True))
        if "hook_resid_post" in sites:
            add(b.block.register_forward_hook(self._on_output(pre + "hook_resid_post")))
        mlp_hs = self.hs
        if self.mlp_flat and sites & MLP_SIDE:   # the MLP sees [batch*pos, ...]: hooks see [batch pos ...]
            mlp_hs = Unflattened(self.hs, stash)
            add(b.block.register_forward_pre_hook(record_batch_pos(stash), with_kwargs=True))
        split = sites & set(split_qkv.SPLIT_SITES)
        if split:   # the split q/k/v inputs copy what the attention reads: surface hook_attn_in, keep it
            self.hs._points.setdefault(pre + "hook_attn_in", parse(pre + "hook_attn_in"))
            sites = sites | {"hook_attn_in"}
        if b.ln2 is b.ln1:  # one norm read by parallel attention and MLP (mechscope.model.shared_norm)
            self._install_shared_norm(b, sites, pre, wanted, stash)
        else:
            for site, module, hs in (("hook_attn_in", b.ln1, self.hs), ("hook_mlp_in", b.ln2, mlp_hs)):
                if site in sites:
                    keep = stash if site == "hook_attn_in" else None
                    add(module.register_forward_pre_hook(self._on_read(pre + site, hs, keep), with_kwargs=True))
            for ln, module, hs in (("ln1", b.ln1, self.hs), ("ln2", b.ln2, mlp_hs)):
                if sites & {f"{ln}.hook_scale", f"{ln}.hook_normalized"}:
                    add(module.register_forward_hook(self._on_norm(f"{pre}{ln}.", module, wanted, hs)))
        if sites & set(ATTN_INTERNAL):
            state = getattr(b.attn, STATE_ATTR, None)
            if state is None:
                state = _AttnHooks([], getattr(b.attn, self.query_scale_attr) if self.query_scale_attr else None)
                setattr(b.attn, STATE_ATTR, state)
            state.entries.append((self.hs, pre + "attn.hook_"))
            self._attn_modules.append(b.attn)
        for module, hook in split_qkv.projection_hooks(self.hs, pre, self.table, self.cfg, b, stash, split):
            add(module.register_forward_hook(hook))
        if "attn.hook_result" in sites:
            add(b.out_proj.register_forward_hook(self._on_out_proj(layer)))
        if sites & {"hook_attn_out", "hook_resid_mid"}:
            add(b.attn_writer.register_forward_hook(self._on_attn(layer, {pre + s for s in sites}, stash)))
        if "mlp.hook_pre" in sites:
            on_pre = self._on_gate_half if self.gate_up_fused else self._on_output
            add(b.mlp_pre.register_forward_hook(on_pre(pre + "mlp.hook_pre", mlp_hs)))
        if "mlp.hook_post" in sites:
            add(b.mlp_out.register_forward_pre_hook(self._on_input(pre + "mlp.hook_post", hs=mlp_hs),
                                                    with_kwargs=True))
        if "hook_mlp_out" in sites:
            add(b.mlp_writer.register_forward_hook(self._on_output(pre + "hook_mlp_out", mlp_hs)))

    def _install_shared_norm(self, b, sites: set[str], pre: str, wanted: set[str], block_stash: dict) -> None:
        add, norm, stash = self._handles.append, b.ln1, {}
        if sites & {"hook_attn_in", "hook_mlp_in"}:
            add(norm.register_forward_pre_hook(shared_norm.record_norm_input(stash), with_kwargs=True))
        for reads, ln, reader in (("hook_attn_in", "ln1", b.attn), ("hook_mlp_in", "ln2", b.mlp)):
            if reads in sites:
                keep = block_stash if reads == "hook_attn_in" else None
                hook = shared_norm.own_copy_input(self.hs, pre + reads, norm, stash, keep)
                add(reader.register_forward_pre_hook(hook, with_kwargs=True))
            if f"{ln}.hook_normalized" in sites:
                add(reader.register_forward_pre_hook(self._on_read(f"{pre}{ln}.hook_normalized"), with_kwargs=True))
            if f"{ln}.hook_scale" in sites:
                add(norm.register_forward_hook(self._on_norm(f"{pre}{ln}.", norm, {f"{pre}{ln}.hook_scale"})))

    def _remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        for module in self._attn_modules:
            state = getattr(module, STATE_ATTR, None)
            if state is not None:
                state.entries = [e for e in state.entries if e[0] is not self.hs]
                if not state.entries:
                    delattr(module, STATE_ATTR)
        self._attn_modules.clear()
