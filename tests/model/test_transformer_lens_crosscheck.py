"""Peer cross-check: the same weights give the same cached activations in TransformerLens, for every
adapted architecture its TransformerBridge boots.

TransformerLens is a test/bench extra, never a run-time dependency: this test skips without it.
TransformerLens 4 runs the HF modules through its TransformerBridge, unprocessed (no folding), so
activations must agree to float tolerance, hook name by hook name, up to two documented conventions:

- ``ln*.hook_normalized``: ours is the norm's output (after its weight and bias, what the sublayer
  reads); the bridge's is before them. Checked as ours == theirs * (weight + offset) + bias.
- ``attn.hook_q`` / ``hook_k`` on rotary models: ours are rotated (what the scores read), the
  bridge's are the projections' outputs. Not compared there.
"""

from __future__ import annotations

import pytest
import torch

from mechscope import HookedModel
from tests.helpers import small_hf_model

tl_bridge = pytest.importorskip("transformer_lens.model_bridge", reason="TransformerLens not installed (bench extra)")

SHARED_POINTS = ("hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out", "hook_mlp_out",
                 "ln1.hook_normalized", "ln2.hook_normalized", "ln1.hook_scale", "attn.hook_q", "attn.hook_k",
                 "attn.hook_v", "attn.hook_z", "attn.hook_pattern", "mlp.hook_pre", "mlp.hook_post")


@pytest.mark.parametrize("arch", ["gpt2", "gpt_neo", "opt", "gptj", "phi", "neox", "llama", "stablelm", "phi3",
                                  "gemma2", "gemma3"])
def test_cached_activations_equal_transformer_lens(tmp_path, tokenizer, arch):
    hf = small_hf_model(arch, seed=7)
    hf.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    bridge = tl_bridge.TransformerBridge.boot_transformers(str(tmp_path), device="cpu")
    model = HookedModel.from_hf(hf, tokenizer)
    tokens = model.to_tokens("The quick brown fox jumps over the lazy dog")
    with torch.no_grad():
        tl_logits, tl_cache = bridge.run_with_cache(tokens)
    logits, cache = model.run_with_cache(tokens)
    torch.testing.assert_close(logits, tl_logits, atol=1e-5, rtol=0)
    compared = 0
    norms = model.norms()
    for layer in range(model.cfg.n_layers):
        for site in SHARED_POINTS:
            name = f"blocks.{layer}.{site}"
            if name not in tl_cache.keys() or (site in ("attn.hook_q", "attn.hook_k") and model.cfg.positional == "rotary"):
                continue
            ours, theirs = cache[name], tl_cache[name]
            if model.table.mlp_flattens_positions and theirs.dim() == 2:  # the bridge shows OPT's MLP side flat
                theirs = theirs.reshape(ours.shape)
            assert ours.shape == theirs.shape, name
            if site.endswith("hook_normalized"):
                norm = norms[f"blocks.{layer}.{site.split('.')[0]}"]
                bias = norm.bias if getattr(norm, "bias", None) is not None else 0.0
                theirs = theirs * (norm.weight + model.table.norm_weight_offset) + bias
            torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5, msg=name)
            compared += 1
    assert compared >= 8 * model.cfg.n_layers
