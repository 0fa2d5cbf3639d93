"""The LLaMA family: RoPE, RMSNorm, gated SiLU MLP, grouped-query attention.

One table serves every HF class that lays its modules out the LLaMA way (Mistral, Qwen2, Qwen3
differ only in config values such as sliding windows, q/k norms and biases, which the HF modules
handle themselves). Its variants are the LLaMA table with what differs replaced: Gemma (RMSNorm
weight offset), StableLM (LayerNorm), Phi-3 (fused qkv and gate_up projections).
"""

import dataclasses

from mechscope.model.adapters.base import ArchitectureTable

LLAMA = ArchitectureTable(
    name="llama",
    hf_classes=("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"),
    embed="model.embed_tokens",
    layers="model.layers",
    final_norm="model.norm",
    mlp_in="up_proj",
    mlp_gate="gate_proj",
    mlp_out="down_proj",
)

GEMMA = dataclasses.replace(
    LLAMA,
    name="gemma",
    hf_classes=("GemmaForCausalLM",),
    norm_eps_attr="eps",
    norm_weight_offset=1.0,
)

STABLELM = dataclasses.replace(
    LLAMA,
    name="stablelm",
    hf_classes=("StableLmForCausalLM",),
    norm="layernorm",
    norm_eps_attr="eps",
    # parallel blocks share one norm for attention and MLP, which the hook points do not express yet
    unsupported=((lambda c: getattr(c, "use_parallel_residual", False),
                  "use_parallel_residual=True: parallel attention+MLP with one shared norm is not adapted"),),
)

PHI3 = dataclasses.replace(
    LLAMA,
    name="phi3",
    hf_classes=("Phi3ForCausalLM",),
    qkv_layout="fused_linear",
    q_proj="qkv_proj",
    mlp_in="gate_up_proj",
    mlp_gate="gate_up_proj",
    mlp_gate_up_fused=True,
)
