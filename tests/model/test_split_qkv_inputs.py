"""The per-head q/k/v input points (hook_q_input, hook_k_input, hook_v_input; model/split_qkv.py).

Present and unreplaced they leave the forward as it was; a replacement of one head's copy changes
that head alone, by what the HF projections give on the replaced input; the gradients of the
copies sum to the gradient of hook_attn_in.
"""

from __future__ import annotations

import pytest
import torch

from mechscope import HookedModel
from tests.helpers import gpt2_tokenizer, small_hf_model

SPLIT = ("q", "k", "v")


@pytest.fixture(scope="module", params=["gpt2", "llama", "neox", "phi"])
def model(request):
    """GPT-2 (fused Conv1D), LLaMA (GQA, separate projections), NeoX (per-head fused, parallel), Phi (shared norm)."""
    return HookedModel.from_hf(small_hf_model(request.param, vocab=1000), gpt2_tokenizer(), spec=request.param)


def _tokens(model, seed=0):
    return torch.randint(0, model.cfg.d_vocab, (2, 7), generator=torch.Generator().manual_seed(seed))


def _split_names(model):
    return [f"blocks.{L}.hook_{x}_input" for L in range(model.cfg.n_layers) for x in SPLIT]


def test_present_and_unreplaced_the_logits_are_the_plain_forward(model):
    tokens = _tokens(model)
    with torch.no_grad():
        plain = model(tokens)
        logits, cache = model.run_with_cache(tokens, names=_split_names(model) + ["blocks.1.hook_attn_in"])
        _, default = model.run_with_cache(tokens)
    assert torch.equal(logits, plain)     # by construction (split_qkv: the rebuilt part is exactly zero)
    assert not any(n.endswith("_input") for n in default.keys())
    c = model.cfg
    assert cache["blocks.1.hook_q_input"].shape == (2, 7, c.n_heads, c.d_model)
    assert cache["blocks.1.hook_k_input"].shape == (2, 7, c.n_kv_heads, c.d_model)   # TransformerLens' GQA layout
    for x in SPLIT:
        copies = cache[f"blocks.1.hook_{x}_input"]
        assert torch.equal(copies, cache["blocks.1.hook_attn_in"][:, :, None].expand_as(copies))


@pytest.mark.parametrize("which", SPLIT)
def test_replacing_one_heads_input_changes_that_head_alone(model, which):
    """Add noise to head 1's copy in layer 1: only the heads that read it move (for k / v on GQA,
    the query heads of kv head 1), and its q / k / v equal the HF projection of ln1(x + noise)."""
    tokens = _tokens(model)
    noise = torch.randn(2, 7, model.cfg.d_model, generator=torch.Generator().manual_seed(3))

    def add(x, hook):
        x = x.clone()
        x[:, :, 1] += noise
        return x
    names = ["blocks.1.attn.hook_z", f"blocks.1.attn.hook_{which}", "blocks.1.hook_attn_in"]
    with torch.no_grad():
        _, clean = model.run_with_cache(tokens, names=names)
        with model.hooks(fwd={f"blocks.1.hook_{which}_input": add}):
            _, patched = model.run_with_cache(tokens, names=names[:2])
    group = model.cfg.n_heads // (model.cfg.n_kv_heads if which != "q" else model.cfg.n_heads)
    readers = set(range(group, 2 * group))                        # query heads that read head 1 of this input
    moved = (patched["blocks.1.attn.hook_z"] - clean["blocks.1.attn.hook_z"]).abs().amax((0, 1, 3))
    assert {h for h, d in enumerate(moved.tolist()) if d > 1e-6} == readers
    own = (patched[f"blocks.1.attn.hook_{which}"] - clean[f"blocks.1.attn.hook_{which}"]).abs().amax((0, 1, 3))
    assert {h for h, d in enumerate(own.tolist()) if d > 0} == {1}
    if model.cfg.positional == "learned":      # no RoPE between the projection and hook_q/k/v: check the value
        i = SPLIT.index(which)
        w, b = model._qkv(1)[i][1], model._qkv(1)[3 + i][1]       # head 1: [d_model d_head], [d_head]
        block = model.structure.blocks[1]
        with torch.no_grad():
            expect = block.ln1(clean["blocks.1.hook_attn_in"] + noise) @ w + b
        torch.testing.assert_close(patched[f"blocks.1.attn.hook_{which}"][:, :, 1], expect, atol=1e-5, rtol=0)


def test_gradients_of_the_copies_sum_to_the_attention_inputs(model):
    tokens = _tokens(model)

    def grads(names):
        _, cache = model.run_with_cache(tokens, names=names, grad_metric=lambda lg: lg[:, -1].logsumexp(-1).sum())
        return [cache[n + "_grad"] for n in names]

    merged = grads(["blocks.0.hook_attn_in"])[0]
    per_head = grads([f"blocks.0.hook_{x}_input" for x in SPLIT])
    assert merged.abs().max() > 1e-3
    torch.testing.assert_close(sum(g.sum(2) for g in per_head), merged, atol=1e-6, rtol=1e-5)
