"""Test helpers shared across folders (import these; never import tests.conftest): paths to the
shared test data, the real GPT-2 tokenizer, and small random-init models of every adapted architecture."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
GPT2_TOKENIZER = SHARED / "tokenizers" / "gpt2"
STORIES260K = SHARED / "models" / "stories260K"


def gpt2_tokenizer():
    from transformers import AutoTokenizer

    if not GPT2_TOKENIZER.exists():
        pytest.skip(f"GPT-2 tokenizer not found at {GPT2_TOKENIZER}")
    return AutoTokenizer.from_pretrained(str(GPT2_TOKENIZER))


def small_hf_model(arch: str, *, seed: int = 0, n_layers: int = 2, d_model: int = 64, n_heads: int = 4,
                   n_ctx: int = 128, vocab: int = 50257):
    """A random-init HF causal LM of the given adapter architecture (fp32, eval mode)."""
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        GPTNeoXConfig,
        GPTNeoXForCausalLM,
        LlamaConfig,
        LlamaForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    torch.manual_seed(seed)
    if arch == "gpt2":
        return GPT2LMHeadModel(GPT2Config(n_layer=n_layers, n_embd=d_model, n_head=n_heads, n_positions=n_ctx,
                                          vocab_size=vocab)).eval()
    if arch in ("neox", "neox-sequential"):
        return GPTNeoXForCausalLM(GPTNeoXConfig(
            num_hidden_layers=n_layers, hidden_size=d_model, num_attention_heads=n_heads,
            intermediate_size=4 * d_model, vocab_size=vocab, max_position_embeddings=n_ctx, rotary_pct=0.25,
            use_parallel_residual=arch == "neox")).eval()
    if arch == "llama":
        return LlamaForCausalLM(LlamaConfig(
            num_hidden_layers=n_layers, hidden_size=d_model, num_attention_heads=n_heads,
            num_key_value_heads=n_heads // 2, intermediate_size=3 * d_model, vocab_size=vocab,
            max_position_embeddings=n_ctx)).eval()
    if arch == "qwen2":
        return Qwen2ForCausalLM(Qwen2Config(
            num_hidden_layers=n_layers, hidden_size=d_model, num_attention_heads=n_heads,
            num_key_value_heads=n_heads // 2, intermediate_size=3 * d_model, vocab_size=vocab,
            max_position_embeddings=n_ctx)).eval()
    if arch == "gemma":
        from transformers import GemmaConfig, GemmaForCausalLM

        return GemmaForCausalLM(GemmaConfig(
            num_hidden_layers=n_layers, hidden_size=d_model, num_attention_heads=n_heads,
            num_key_value_heads=1, head_dim=d_model // n_heads, intermediate_size=3 * d_model,
            vocab_size=vocab, max_position_embeddings=n_ctx)).eval()
    raise ValueError(arch)


ARCHES = ("gpt2", "neox", "neox-sequential", "llama", "qwen2", "gemma")
