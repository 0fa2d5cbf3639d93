"""The LLaMA family: RoPE, RMSNorm, gated SiLU MLP, grouped-query attention.

One table serves every HF class that lays its modules out the LLaMA way (Mistral, Qwen2, Qwen3
differ only in config values such as sliding windows, q/k norms and biases, which the HF modules
handle themselves).
"""

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

GEMMA = ArchitectureTable(
    name="gemma",
    hf_classes=("GemmaForCausalLM",),
    embed="model.embed_tokens",
    layers="model.layers",
    final_norm="model.norm",
    mlp_in="up_proj",
    mlp_gate="gate_proj",
    mlp_out="down_proj",
    norm_eps_attr="eps",
    norm_weight_offset=1.0,
)
