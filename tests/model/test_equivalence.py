"""Every adapter against the plain HF forward: logits, hidden states, decompositions."""

from __future__ import annotations

import copy

import pytest
import torch

from mechscope import HookedModel
from tests.helpers import ARCHES, small_hf_model

TEXTS = ["The quick brown fox jumps over the lazy dog, and then", "A short one"]


def _models(arch, tokenizer):
    hf = small_hf_model(arch)
    ref = {impl: copy.deepcopy(hf) for impl in ("sdpa", "eager")}
    for impl, m in ref.items():
        try:
            m.set_attn_implementation(impl)
        except ValueError:  # no SDPA path (Gemma-2's soft-capping, GPT-Neo): HF runs eager
            ref[impl] = ref["eager"] if impl == "sdpa" else m
    return HookedModel.from_hf(hf, tokenizer), ref


@pytest.fixture(scope="module", params=ARCHES)
def pair(request, tokenizer):
    return _models(request.param, tokenizer)


@pytest.fixture(scope="module")
def stories_pair(stories260k):
    from transformers import AutoModelForCausalLM

    from tests.helpers import STORIES260K

    ref = {impl: AutoModelForCausalLM.from_pretrained(str(STORIES260K), attn_implementation=impl).eval()
           for impl in ("sdpa", "eager")}
    return stories260k, ref


def _check(model, ref):
    batch = model.tokenize(TEXTS)
    t, mask = batch.tokens, batch.attention_mask
    with torch.no_grad():
        plain = model(t, attention_mask=mask)
        sdpa = ref["sdpa"](input_ids=t, attention_mask=mask).logits
        eager_out = ref["eager"](input_ids=t, attention_mask=mask, output_hidden_states=True)
        logits, cache = model.run_with_cache(t, attention_mask=mask, names=lambda n: True)
    # no hooks: bit-identical to the HF sdpa forward
    assert torch.equal(plain, sdpa)
    # every hook point cached (eager attention internals): equal to HF eager
    assert len(cache) == len(model.hook_names())
    torch.testing.assert_close(logits, eager_out.logits, atol=1e-5, rtol=0)
    real = mask.bool()
    for layer in range(model.cfg.n_layers - 1):  # HF's last hidden state is after the final norm
        torch.testing.assert_close(cache["resid_post", layer][real], eager_out.hidden_states[layer + 1][real],
                                   atol=1e-5, rtol=0)
    torch.testing.assert_close(cache["ln_final.hook_normalized"][real], eager_out.hidden_states[-1][real],
                               atol=1e-5, rtol=0)
    # decomposition sums to the final residual; heads sum to attn_out
    final = cache["resid_post", model.cfg.n_layers - 1]
    torch.testing.assert_close(cache.decompose_resid().sum(0), final, atol=1e-4, rtol=0)
    for layer in range(model.cfg.n_layers):
        heads = cache["result", layer].sum(2) + model.b_O[layer]
        if model.table.attn_out_module is not None:  # a post-attention norm between heads and attn_out
            heads = model.structure.blocks[layer].attn_writer(heads)
        torch.testing.assert_close(heads, cache["attn_out", layer], atol=1e-5, rtol=0)
    # the linearised final norm of the decomposition reproduces the norm output (minus its bias)
    stack = cache.apply_ln_to_stack(cache.decompose_resid())
    bias = getattr(model.structure.final_norm, "bias", None)
    expect = cache["ln_final.hook_normalized"] - (bias if bias is not None else 0)
    torch.testing.assert_close(stack.sum(0), expect, atol=1e-4, rtol=1e-4)


def test_adapter_matches_hf(pair):
    _check(*pair)


def test_stories260k_matches_hf(stories_pair):
    _check(*stories_pair)


def test_weight_views_reproduce_activations(pair):
    """W_Q/W_K/W_V/W_O/W_in/W_out recompute the cached q, k, v, result and mlp pre-activation."""
    model, _ = pair
    c = model.cfg
    _, cache = model.run_with_cache(model.to_tokens(TEXTS[0]), names=lambda n: True)
    layer = c.n_layers - 1
    x = cache["ln1.hook_normalized", layer] if False else cache["normalized", layer, "ln1"]
    if c.positional != "rotary":  # rotary q/k are rotated after the projection
        q = torch.einsum("bpm,hmd->bphd", x, model.W_Q[layer]) + model.b_Q[layer]
        torch.testing.assert_close(q, cache["q", layer], atol=1e-5, rtol=0)
    v = torch.einsum("bpm,hmd->bphd", x, model.W_V[layer]) + model.b_V[layer]
    kv_v = cache["v", layer].repeat_interleave(c.n_heads // c.n_kv_heads, dim=2)
    torch.testing.assert_close(v, kv_v, atol=1e-5, rtol=0)
    result = torch.einsum("bphd,hdm->bphm", cache["z", layer], model.W_O[layer])
    torch.testing.assert_close(result, cache["result", layer], atol=1e-5, rtol=0)
    x2 = cache["normalized", layer, "ln2"]
    w_pre = model.W_gate[layer] if c.gated_mlp else model.W_in[layer]
    pre = x2 @ w_pre + (0 if c.gated_mlp else model.b_in[layer])
    torch.testing.assert_close(pre, cache["pre", layer], atol=1e-5, rtol=0)
    out = cache["post", layer] @ model.W_out[layer] + model.b_out[layer]
    if model.table.mlp_out_module not in (None, model.table.mlp_out):  # a post-MLP norm (Gemma-2)
        out = model.structure.blocks[layer].mlp_writer(out)
    torch.testing.assert_close(out, cache["mlp_out", layer], atol=1e-5, rtol=0)


def test_unembed_of_final_norm_is_logits(pair):
    model, _ = pair
    logits, cache = model.run_with_cache(model.to_tokens(TEXTS[0]), names=["ln_final.hook_normalized"])
    torch.testing.assert_close(model.unembed(cache["ln_final.hook_normalized"]), logits, atol=1e-5, rtol=0)
    resid = cache.model.run_with_cache(model.to_tokens(TEXTS[0]), names=[f"blocks.{model.cfg.n_layers-1}.hook_resid_post"])[1]
    torch.testing.assert_close(model.unembed(model.ln_final(resid["resid_post", model.cfg.n_layers - 1])), logits,
                               atol=1e-5, rtol=0)
