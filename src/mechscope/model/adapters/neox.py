"""GPT-NeoX / Pythia: rotary (partial), LayerNorm, parallel attention and MLP, per-head fused QKV."""

from mechscope.model.adapters.base import ArchitectureTable

NEOX = ArchitectureTable(
    name="neox",
    hf_classes=("GPTNeoXForCausalLM",),
    embed="gpt_neox.embed_in",
    layers="gpt_neox.layers",
    final_norm="gpt_neox.final_layer_norm",
    attn="attention",
    qkv_layout="fused_per_head",
    q_proj="query_key_value",
    out_proj="dense",
    mlp_in="dense_h_to_4h",
    mlp_out="dense_4h_to_h",
    norm="layernorm",
    norm_eps_attr="eps",
    positional="rotary",
    parallel_attn_mlp_attr="use_parallel_residual",
    n_kv_heads_key=None,
)
