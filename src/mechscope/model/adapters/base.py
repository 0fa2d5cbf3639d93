"""The architecture table: everything that differs between HF causal-LM classes, as data.

An adapter says where the pieces of a model live (module paths relative to the model, the
block, the attention and the MLP), how the attention projections are laid out, and which config
fields carry the sizes. Code that reads weights or attaches hooks consults the table; it never
branches on the architecture's name.

Adding an architecture is adding one table (see `docs/adding-an-architecture.md`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Literal

QKVLayout = Literal["separate", "fused_conv1d", "fused_linear", "fused_per_head"]
"""How W_Q, W_K, W_V are stored.

separate        q_proj, k_proj, v_proj nn.Linear (weight [out, in])            LLaMA, Gemma, OPT, Phi, GPT-Neo, GPT-J
fused_conv1d    one Conv1D (weight [in, out]) whose output is [q | k | v]      GPT-2
fused_linear    one nn.Linear whose output is [q | k | v] (k, v: n_kv_heads)   Phi-3
fused_per_head  one nn.Linear whose output is, per head, [q_h | k_h | v_h]     GPT-NeoX / Pythia
"""


@dataclasses.dataclass(frozen=True)
class ArchitectureTable:
    name: str                          # short name shown to users ("gpt2", "llama", ...)
    hf_classes: tuple[str, ...]        # HF *ForCausalLM class names this table serves
    # model-level module paths (dotted, relative to the *ForCausalLM)
    embed: str
    layers: str
    final_norm: str
    unembed: str = "lm_head"
    pos_embed: str | None = None       # learned positional embedding, if any
    pos_embed_offset: int = 0          # rows of the position table before position 0 (OPT keeps 2)
    # block-level paths (relative to one decoder layer)
    ln1: str = "input_layernorm"
    ln2: str | None = "post_attention_layernorm"  # None: parallel attention and MLP both read ln1 (Phi, GPT-J)
    attn: str = "self_attn"
    mlp: str = "mlp"                   # "": the MLP's projections sit on the block itself (OPT)
    # attention-level paths (relative to the attention module)
    qkv_layout: QKVLayout = "separate"
    q_proj: str = "q_proj"             # for fused layouts: the fused projection
    k_proj: str = "k_proj"
    v_proj: str = "v_proj"
    out_proj: str = "o_proj"
    out_proj_is_conv1d: bool = False   # GPT-2's Conv1D stores weight as [in, out]
    query_prescaled_attr: str | None = None  # attention-module attribute holding the factor its queries are
    #   multiplied by before the attention function (OPT's `scaling`): hook_q shows them unscaled, as x W_Q + b_Q
    # block-level paths of the modules whose outputs are added to the residual stream, when they are
    # not the attention / MLP modules themselves (Gemma-2's post-sublayer norms, OPT's inline MLP)
    attn_out_module: str | None = None
    mlp_out_module: str | None = None
    # mlp-level paths (relative to the MLP module)
    mlp_in: str = "up_proj"            # the linear whose output is hook_pre (the gate for gated MLPs)
    mlp_gate: str | None = None        # gated MLPs: the gate projection (hook_pre reads it)
    mlp_out: str = "down_proj"         # its input is hook_post
    mlp_is_conv1d: bool = False
    mlp_gate_up_fused: bool = False    # one projection (mlp_gate == mlp_in) whose output is [gate | up] (Phi-3)
    mlp_flattens_positions: bool = False  # the MLP side runs on [batch*pos, d] (OPT); hooks still see [batch pos d]
    # behaviour
    norm: Literal["layernorm", "rmsnorm"] = "rmsnorm"
    norm_eps_attr: str = "variance_epsilon"   # attribute of the norm module holding eps
    norm_weight_offset: float = 0.0    # Gemma's RMSNorm multiplies by (1 + weight)
    positional: Literal["learned", "rotary", "none"] = "rotary"
    parallel_attn_mlp_attr: str | None = None  # config attribute that, when true, makes attn and mlp parallel
    attn_kernel: Callable | None = None  # for attention modules that bypass transformers' attention interface:
    #   installs our hooked attention on one such module (GPT-Neo); None: the model runs with
    #   attn_implementation="mechscope" (mechscope.model.attention)
    unsupported: tuple[tuple[Callable, str], ...] = ()  # (config -> bool, why): variants this table cannot serve
    # config field names (HF configs disagree on them)
    n_layers_key: str = "num_hidden_layers"
    d_model_key: str = "hidden_size"
    n_heads_key: str = "num_attention_heads"
    n_kv_heads_key: str | None = "num_key_value_heads"
    d_mlp_key: str = "intermediate_size"
    n_ctx_key: str = "max_position_embeddings"
    act_key: str = "hidden_act"

    def check_config(self, config) -> str | None:
        """Why this table cannot serve a model with `config` (a variant it does not lay out), or None."""
        for applies, why in self.unsupported:
            if applies(config):
                return why
        return None

    @property
    def pre_hook_mlp_name(self) -> str:
        """The MLP submodule whose output is hook_pre."""
        return self.mlp_gate or self.mlp_in
