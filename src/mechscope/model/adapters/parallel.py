"""Parallel blocks with ONE norm for attention and MLP: ``x + attn(ln(x)) + mlp(ln(x))``.

Phi-1 / Phi-1.5 / Phi-2 (partial rotary, q/k/v/dense with biases, GELU fc1/fc2, biased LM head) and
GPT-J (GPT-2's module names, rotary on the first rotary_dim dims, no attention biases). ``ln2=None``
says the MLP reads ln1; `mechscope.model.shared_norm` then places the sublayer-input hook points
on each reader so a replacement still reaches one sublayer.
"""

import dataclasses

from mechscope.model.adapters.gpt2 import GPT2
from mechscope.model.adapters.llama import LLAMA

PHI = dataclasses.replace(
    LLAMA,
    name="phi",
    hf_classes=("PhiForCausalLM",),
    final_norm="model.final_layernorm",
    ln2=None,
    out_proj="dense",
    mlp_in="fc1",
    mlp_gate=None,
    mlp_out="fc2",
    norm="layernorm",
    norm_eps_attr="eps",
)

GPTJ = dataclasses.replace(
    GPT2,
    name="gptj",
    hf_classes=("GPTJForCausalLM",),
    pos_embed=None,
    ln2=None,
    qkv_layout="separate",
    q_proj="q_proj",
    out_proj="out_proj",
    out_proj_is_conv1d=False,
    mlp_in="fc_in",
    mlp_out="fc_out",
    mlp_is_conv1d=False,
    positional="rotary",
)
