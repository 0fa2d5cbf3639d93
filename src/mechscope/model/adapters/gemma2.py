"""Gemma-2 and Gemma-3 (text): the Gemma table plus sandwich norms.

Each sublayer's output passes through its own RMSNorm before it joins the residual stream
(``post_attention_layernorm``, ``post_feedforward_layernorm``), and the MLP reads
``pre_feedforward_layernorm``. So hook_attn_out / hook_mlp_out are those post-norms' outputs (what
the block adds to the stream, as in TransformerLens), and ln2 is the pre-feedforward norm.
Consequence: per-head ``attn.hook_result`` (z_h W_O[h]) sums to the attention module's output
*before* the post-norm, not to hook_attn_out. Attention soft-capping (Gemma-2), sliding-window
layers, q/k norms (Gemma-3) and the scaled embedding are computed by the HF modules themselves;
the final logit soft-cap is applied by `HookedModel.unembed`.
"""

import dataclasses

from mechscope.model.adapters.llama import GEMMA

GEMMA2 = dataclasses.replace(
    GEMMA,
    name="gemma2",
    hf_classes=("Gemma2ForCausalLM", "Gemma3ForCausalLM"),
    ln2="pre_feedforward_layernorm",
    attn_out_module="post_attention_layernorm",
    mlp_out_module="post_feedforward_layernorm",
)
