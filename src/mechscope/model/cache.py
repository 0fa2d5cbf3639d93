"""ActivationCache: cached activations with TransformerLens-style access and residual decompositions."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

import torch

from mechscope.errors import HookNameError
from mechscope.model.names import act_name

if TYPE_CHECKING:
    from mechscope.model.hooked import HookedModel


def accumulated_resid_names(n_layers: int) -> list[str]:
    """The n_layers + 1 hook names of the residual stream after 0, 1, ..., n_layers blocks:
    resid_pre of every block, then the final resid_post (what the final norm reads)."""
    return [f"blocks.{layer}.hook_resid_pre" for layer in range(n_layers)] + [f"blocks.{n_layers - 1}.hook_resid_post"]


def accumulated_resid_labels(n_layers: int) -> list[str]:
    """Short plot labels for those points: "embed", then the index of the block just applied.
    (``accumulated_resid(return_labels=True)`` gives TransformerLens's "0_pre" ... "final_post".)"""
    return ["embed"] + [str(layer) for layer in range(n_layers)]


class ActivationCache(Mapping):
    """A mapping from hook name to tensor, plus the views interpretability work reads.

    ``cache["blocks.3.hook_resid_post"]``, ``cache["resid_post", 3]``, ``cache["scale", 2, "ln1"]``.
    Gradients cached by ``run_with_cache(grad_metric=...)`` are under ``name + "_grad"``.
    """

    def __init__(self, store: dict[str, torch.Tensor], model: HookedModel) -> None:
        self._store = store
        self.model = model

    # -- mapping ---------------------------------------------------------------------------------
    def _key(self, key) -> str:
        if isinstance(key, tuple):
            return act_name(*key)
        return key if key in self._store else act_name(key)

    def __getitem__(self, key) -> torch.Tensor:
        name = self._key(key)
        try:
            return self._store[name]
        except KeyError:
            raise HookNameError(
                f"{name!r} is not in this cache ({len(self._store)} entries). Cache it with "
                f"model.run_with_cache(..., names=[{name!r}, ...]) or names=None for all."
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._store)

    def __len__(self) -> int:
        return len(self._store)

    def __contains__(self, key) -> bool:
        try:
            return self._key(key) in self._store
        except HookNameError:
            return False

    def __repr__(self) -> str:
        return f"ActivationCache({len(self)} entries)"

    def to(self, device=None, dtype=None) -> ActivationCache:
        return ActivationCache({k: v.to(device=device, dtype=dtype) for k, v in self._store.items()}, self.model)

    # -- residual stream views ---------------------------------------------------------------------
    def accumulated_resid(self, layer: int | None = None, *, apply_ln: bool = False,
                          return_labels: bool = False):
        """The residual stream before each of the first `layer` blocks, plus the final stream.

        Returns [component batch pos d_model]: resid_pre of blocks 0..layer-1, then (when layer is
        None or n_layers) the final resid_post. Labels "0_pre", ..., "final_post".
        """
        n = self.model.cfg.n_layers
        layer = n if layer is None else layer
        names = accumulated_resid_names(n)[:min(layer, n) + (1 if layer >= n else 0)]
        labels = [f"{i}_pre" for i in range(min(layer, n))] + (["final_post"] if layer >= n else [])
        stack = torch.stack([self[name] for name in names])
        if apply_ln:
            stack = self.apply_ln_to_stack(stack, None if layer >= n else layer)
        return (stack, labels) if return_labels else stack

    def decompose_resid(self, layer: int | None = None, *, mode: str = "all", incl_embeds: bool = True,
                        apply_ln: bool = False, return_labels: bool = False):
        """The residual stream at `layer` as a sum of components [component batch pos d_model].

        Components: embed, pos_embed (learned-position models), then attn_out and mlp_out of each
        block before `layer` (mode "attn"/"mlp" keeps one kind). With mode="all" and incl_embeds they
        sum exactly to resid_pre of `layer` (the final resid_post when layer is None).
        """
        n = self.model.cfg.n_layers
        layer = n if layer is None else layer
        parts, labels = [], []
        if incl_embeds:
            parts.append(self["hook_embed"])
            labels.append("embed")
            if self.model.cfg.positional == "learned":
                parts.append(self["hook_pos_embed"])
                labels.append("pos_embed")
        for i in range(layer):
            if mode in ("all", "attn"):
                parts.append(self["attn_out", i])
                labels.append(f"{i}_attn_out")
            if mode in ("all", "mlp"):
                parts.append(self["mlp_out", i])
                labels.append(f"{i}_mlp_out")
        stack = torch.stack(torch.broadcast_tensors(*parts))  # pos_embed is [1 pos d_model]
        if apply_ln:
            stack = self.apply_ln_to_stack(stack, None if layer >= n else layer)
        return (stack, labels) if return_labels else stack

    def stack_head_results(self, layer: int | None = None, *, apply_ln: bool = False,
                           return_labels: bool = False):
        """Per-head outputs of blocks before `layer` as [component batch pos d_model], labels "L{l}H{h}".

        Needs ``attn.hook_result`` in the cache: run_with_cache(names=lambda n: "result" in n ...).
        """
        n = self.model.cfg.n_layers
        layer = n if layer is None else layer
        parts, labels = [], []
        for i in range(layer):
            result = self["result", i]                     # [batch pos head d_model]
            parts.append(result.movedim(2, 0))
            labels += [f"L{i}H{h}" for h in range(result.shape[2])]
        stack = torch.cat(parts)
        if apply_ln:
            stack = self.apply_ln_to_stack(stack, None if layer >= n else layer)
        return (stack, labels) if return_labels else stack

    def apply_ln_to_stack(self, stack: torch.Tensor, layer: int | None = None) -> torch.Tensor:
        """Apply the norm read by `layer` (ln1 of that block; ln_final when None) to each component.

        Linearised with the cached scale of the full residual: centre (LayerNorm only), divide by
        hook_scale, multiply by the norm's weight. The norm's bias is left out (it is a constant, not
        a component), so components sum to the norm's output minus its bias.
        stack: [component batch pos d_model] (or [component ... d_model] with matching scale dims).
        """
        model = self.model
        if layer is None or layer >= model.cfg.n_layers:
            scale, norm = self["ln_final.hook_scale"], model.structure.final_norm
        else:
            scale, norm = self["scale", layer, "ln1"], model.structure.blocks[layer].ln1
        if model.cfg.norm == "layernorm":
            stack = stack - stack.mean(-1, keepdim=True)
        weight = norm.weight.detach() + model.table.norm_weight_offset
        return stack / scale * weight

    def logit_attrs(self, stack: torch.Tensor, tokens: torch.Tensor | int,
                    incorrect_tokens: torch.Tensor | int | None = None) -> torch.Tensor:
        """Direct logit attribution: each component's contribution to the logit of `tokens`.

        stack: [component ... d_model] already through `apply_ln_to_stack`; tokens: int or [...].
        Returns [component ...] = stack · W_U[:, tokens] (minus the incorrect token's column).
        """
        directions = self.model.tokens_to_residual_directions(tokens)
        if incorrect_tokens is not None:
            directions = directions - self.model.tokens_to_residual_directions(incorrect_tokens)
        return (stack * directions).sum(-1)
