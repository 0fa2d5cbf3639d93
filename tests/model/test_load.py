"""Loading: local dirs, safe weights, and one clear error per kind of bad input."""

from __future__ import annotations

import pytest
import torch

import mechscope
from mechscope import HookedModel
from mechscope.errors import ModelLoadError, UnsupportedArchitectureError
from mechscope.model import loading as load_module
from tests.helpers import small_hf_model


def test_load_local_dir_roundtrip(tmp_path, tokenizer):
    hf = small_hf_model("llama", seed=5)
    hf.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    model = mechscope.load(str(tmp_path), device="cpu")
    tokens = model.to_tokens("hello there")
    with torch.no_grad():
        torch.testing.assert_close(model(tokens), hf(input_ids=tokens).logits, atol=1e-6, rtol=0)
    assert list(tmp_path.glob("*.safetensors")), "save_pretrained writes safetensors, which load prefers"


def test_missing_path_and_missing_config(tmp_path):
    with pytest.raises(ModelLoadError, match="no model directory"):
        mechscope.load(str(tmp_path / "nope"))
    with pytest.raises(ModelLoadError, match="no config.json"):
        mechscope.load(str(tmp_path))


def test_truncated_weights_get_a_clear_error(tmp_path, tokenizer):
    hf = small_hf_model("gpt2", seed=6)
    hf.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    weights = next(tmp_path.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelLoadError, match="corrupt or truncated|could not load"):
        mechscope.load(str(tmp_path))


def test_offline_hub_id_fails_fast_with_a_local_path_hint(monkeypatch):
    monkeypatch.setattr(load_module, "hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(ModelLoadError, match=r"pass the local directory.*mechscope.load\('/path/to/pythia-70m'\)"):
        mechscope.load("EleutherAI/pythia-70m")


def test_unknown_architecture_names_supported_ones(tokenizer):
    from transformers import BloomConfig, BloomForCausalLM

    hf = BloomForCausalLM(BloomConfig(n_layer=1, hidden_size=32, n_head=2, vocab_size=100))
    with pytest.raises(UnsupportedArchitectureError, match="no adapter for BloomForCausalLM.*GPT2LMHeadModel.*add one"):
        HookedModel.from_hf(hf, tokenizer)


def test_bos_rule_is_stated_per_model(tiny_gpt2_model, stories260k):
    assert tiny_gpt2_model.to_tokens("hi")[0, 0].item() == tiny_gpt2_model.tokenizer.bos_token_id
    assert stories260k.to_tokens("hi")[0, 0].item() == 1
    assert tiny_gpt2_model.to_tokens("hi", prepend_bos=False)[0, 0].item() != tiny_gpt2_model.tokenizer.bos_token_id
    assert stories260k.to_str_tokens("Once upon")[0] == "<s>"
