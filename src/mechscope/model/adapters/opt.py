"""OPT (facebook/opt-125m ... 66b): learned positions, LayerNorm, ReLU MLP written inline in the block.

The block has no MLP module: fc1 / fc2 sit on the decoder layer itself and run on positions
flattened to [batch*pos, d] (hooks still see [batch pos ...]); hook_mlp_out is fc2's output. The
position table keeps two rows before position 0, which `W_pos` leaves out. The attention module
multiplies its queries by 1/sqrt(d_head) before the attention function; hook_q shows them
unscaled (x W_Q + b_Q) and the scale is applied to the scores, as on every other model. Variants that norm
after each sublayer (opt-350m) or project embeddings to another width are refused.
"""

from mechscope.model.adapters.base import ArchitectureTable

OPT = ArchitectureTable(
    name="opt",
    hf_classes=("OPTForCausalLM",),
    embed="model.decoder.embed_tokens",
    pos_embed="model.decoder.embed_positions",
    pos_embed_offset=2,
    layers="model.decoder.layers",
    final_norm="model.decoder.final_layer_norm",
    ln1="self_attn_layer_norm",
    ln2="final_layer_norm",
    out_proj="out_proj",
    query_prescaled_attr="scaling",
    mlp="",
    mlp_in="fc1",
    mlp_out="fc2",
    mlp_out_module="fc2",
    mlp_flattens_positions=True,
    norm="layernorm",
    norm_eps_attr="eps",
    positional="learned",
    n_kv_heads_key=None,
    d_mlp_key="ffn_dim",
    act_key="activation_function",
    unsupported=(
        (lambda c: not c.do_layer_norm_before, "do_layer_norm_before=False: post-sublayer norms are not adapted"),
        (lambda c: c.word_embed_proj_dim != c.hidden_size,
         "word_embed_proj_dim != hidden_size: the project_in/project_out layers are not adapted"),
    ),
)
