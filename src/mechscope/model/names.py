"""The hook-point grammar: TransformerLens names, their shapes, and short aliases.

Global points::

    hook_embed                 [batch pos d_model]   token embedding
    hook_pos_embed             [1 pos d_model]       learned positional embedding (learned-position models only;
                                                     batch 1, as the model computes it once for the batch;
                                                     OPT: [batch pos d_model], its positions skip left padding)
    ln_final.hook_scale        [batch pos 1]         final norm divisor: sqrt(var + eps) (LayerNorm) or RMS (RMSNorm)
    ln_final.hook_normalized   [batch pos d_model]   final norm output (after its weight and bias)
    ln_final.hook_in           [batch pos d_model]   (on request) what the final norm reads: the last residual

Per block ``blocks.{L}.``::

    hook_resid_pre             [batch pos d_model]   residual stream entering block L
    hook_attn_in               [batch pos d_model]   (on request) the pre-norm residual the attention sublayer
                                                     reads, as a separate copy: a replacement changes only
                                                     this layer's attention (its norm input), not the stream
    hook_q_input               [batch pos head d_model]     (on request) hook_attn_in copied per query head: what
                                                          head h's query projection reads (through ln1);
                                                          mechscope.model.split_qkv
    hook_k_input, hook_v_input [batch pos kv_head d_model]  (on request) the same per key / value head (GQA: per
                                                          kv head, as TransformerLens without ungrouping)
    ln1.hook_scale             [batch pos 1]         (observe-only) divisor of the attention-input norm
    ln1.hook_normalized        [batch pos d_model]   attention input
    attn.hook_q                [batch pos head d_head]     queries (after RoPE on rotary models)
    attn.hook_k, attn.hook_v   [batch pos kv_head d_head]  keys / values; grouped-query models show their
                                                          n_kv_heads here (query head h reads kv head h // (n_heads / n_kv_heads))
    attn.hook_attn_scores      [batch head q_pos k_pos]    scaled scores plus the additive mask (masked = dtype min)
    attn.hook_pattern          [batch head q_pos k_pos]    attention probabilities
    attn.hook_z                [batch pos head d_head]     pattern-weighted values, input of the output projection
    attn.hook_result           [batch pos head d_model]    each head's output (z_h W_O[h]); sums over heads to
                                                          attn_out - b_O. Computed only when asked.
    hook_attn_out              [batch pos d_model]   attention output
    hook_resid_mid             [batch pos d_model]   resid_pre + attn_out (sequential blocks only; not on
                                                     parallel attention+MLP blocks such as Pythia's)
    hook_mlp_in                [batch pos d_model]   (on request) as hook_attn_in, for the MLP: resid_mid on
                                                     sequential blocks, resid_pre on parallel ones
    ln2.hook_scale, ln2.hook_normalized              as ln1, for the MLP input
    mlp.hook_pre               [batch pos d_mlp]     MLP pre-activation (the gate projection for gated MLPs)
    mlp.hook_post              [batch pos d_mlp]     input of the MLP's output projection
    hook_mlp_out               [batch pos d_model]   MLP output
    hook_resid_post            [batch pos d_model]   residual stream leaving block L

Aliases accepted wherever a name is: ``("resid_post", 3)`` or ``"resid_post", 3`` in a cache,
``"q"``, ``"pattern"``, ``"pre"``, ``"scale"`` (with ``"ln1"``/``"ln2"``), as TransformerLens'
``utils.get_act_name`` does.
"""

from __future__ import annotations

import dataclasses
import difflib
import re

from mechscope.errors import HookNameError

GLOBAL_SITES = ("hook_embed", "hook_pos_embed", "ln_final.hook_in", "ln_final.hook_scale", "ln_final.hook_normalized")
BLOCK_SITES = (
    "hook_resid_pre",
    "hook_attn_in",
    "hook_q_input", "hook_k_input", "hook_v_input",
    "ln1.hook_scale", "ln1.hook_normalized",
    "attn.hook_q", "attn.hook_k", "attn.hook_v",
    "attn.hook_attn_scores", "attn.hook_pattern", "attn.hook_z", "attn.hook_result",
    "hook_attn_out", "hook_resid_mid",
    "hook_mlp_in",
    "ln2.hook_scale", "ln2.hook_normalized",
    "mlp.hook_pre", "mlp.hook_post", "hook_mlp_out",
    "hook_resid_post",
)
ATTN_INTERNAL = {"attn.hook_q": "q", "attn.hook_k": "k", "attn.hook_v": "v",
                 "attn.hook_attn_scores": "attn_scores", "attn.hook_pattern": "pattern", "attn.hook_z": "z"}
ON_REQUEST = ("attn.hook_result", "hook_attn_in", "hook_q_input", "hook_k_input", "hook_v_input", "hook_mlp_in",
              "ln_final.hook_in")
"""Points left out of ``names=None``: computing them costs real work (or, for the sublayer inputs, a
second copy of the residual stream in the cache, n_heads copies for the split q/k/v inputs), so they
must be named."""

_ALIASES = {
    "resid_pre": "hook_resid_pre", "resid_mid": "hook_resid_mid", "resid_post": "hook_resid_post",
    "attn_out": "hook_attn_out", "mlp_out": "hook_mlp_out",
    "q": "attn.hook_q", "k": "attn.hook_k", "v": "attn.hook_v", "z": "attn.hook_z",
    "attn_scores": "attn.hook_attn_scores", "scores": "attn.hook_attn_scores",
    "pattern": "attn.hook_pattern", "attn": "attn.hook_pattern", "result": "attn.hook_result",
    "pre": "mlp.hook_pre", "post": "mlp.hook_post",
    "embed": "hook_embed", "pos_embed": "hook_pos_embed",
    "attn_in": "hook_attn_in", "mlp_in": "hook_mlp_in",
    "q_input": "hook_q_input", "k_input": "hook_k_input", "v_input": "hook_v_input",
}
_BLOCK_RE = re.compile(r"^blocks\.(\d+)\.(.+)$")


@dataclasses.dataclass(frozen=True)
class HookPoint:
    """What a hook function receives as its second argument."""

    name: str
    layer: int | None
    site: str  # the name without "blocks.{L}.", e.g. "attn.hook_z"

    def __repr__(self) -> str:
        return f"HookPoint({self.name!r})"


def parse(name: str) -> HookPoint:
    m = _BLOCK_RE.match(name)
    if m:
        return HookPoint(name, int(m.group(1)), m.group(2))
    return HookPoint(name, None, name)


def act_name(short: str, layer: int | None = None, sublayer: str | None = None) -> str:
    """TransformerLens-style ``get_act_name``: ("resid_post", 3) -> "blocks.3.hook_resid_post"."""
    if short.startswith("blocks.") or short in GLOBAL_SITES:
        return short
    if short in ("scale", "normalized"):
        where = sublayer or ("ln_final" if layer is None else "ln1")
        site = f"{where}.hook_{short}"
    else:
        site = _ALIASES.get(short, short if short.startswith(("hook_", "attn.", "mlp.", "ln")) else f"hook_{short}")
    if site in GLOBAL_SITES:
        return site
    if layer is None:
        raise HookNameError(f"{short!r} is a per-block hook: give a layer, e.g. ({short!r}, 0)")
    return f"blocks.{layer}.{site}"


def all_names(n_layers: int, *, learned_positions: bool, parallel_blocks: bool) -> list[str]:
    names = ["hook_embed"]
    if learned_positions:
        names.append("hook_pos_embed")
    for layer in range(n_layers):
        for site in BLOCK_SITES:
            if site == "hook_resid_mid" and parallel_blocks:
                continue
            names.append(f"blocks.{layer}.{site}")
    names += ["ln_final.hook_in", "ln_final.hook_scale", "ln_final.hook_normalized"]
    return names


def unknown_name_error(name: str, known: list[str]) -> HookNameError:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return HookNameError(f"unknown hook point {name!r}.{hint} model.hook_names() lists all {len(known)}.")
