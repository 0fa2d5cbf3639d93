"""GPT-2: learned positions, LayerNorm, GELU MLP, fused Conv1D projections."""

from mechscope.model.adapters.base import ArchitectureTable

GPT2 = ArchitectureTable(
    name="gpt2",
    hf_classes=("GPT2LMHeadModel",),
    embed="transformer.wte",
    pos_embed="transformer.wpe",
    layers="transformer.h",
    final_norm="transformer.ln_f",
    ln1="ln_1",
    ln2="ln_2",
    attn="attn",
    qkv_layout="fused_conv1d",
    q_proj="c_attn",
    out_proj="c_proj",
    out_proj_is_conv1d=True,
    mlp_in="c_fc",
    mlp_out="c_proj",
    mlp_is_conv1d=True,
    norm="layernorm",
    norm_eps_attr="eps",
    positional="learned",
    n_layers_key="n_layer",
    d_model_key="n_embd",
    n_heads_key="n_head",
    n_kv_heads_key=None,
    d_mlp_key="n_inner",
    n_ctx_key="n_positions",
    act_key="activation_function",
)
