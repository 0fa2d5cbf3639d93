"""The sublayer-input hook points (hook_attn_in, hook_mlp_in, ln_final.hook_in) and frozen gradients.

Each is checked against an independent computation: the residual points they copy, a run that
patches the residual itself, or the HF modules applied by hand.
"""

from __future__ import annotations

import pytest
import torch

from mechscope import HookedModel
from mechscope.model.frozen import frozen_hooks
from tests.helpers import gpt2_tokenizer, small_hf_model

IN_SITES = ("hook_attn_in", "hook_mlp_in", "ln_final.hook_in")


@pytest.fixture(scope="module", params=["gpt2", "neox", "llama", "phi", "gptj", "gemma2"])
def model(request):
    return HookedModel.from_hf(small_hf_model(request.param, vocab=1000), gpt2_tokenizer(), spec=request.param)


def _tokens(model, seed=0):
    return torch.randint(0, model.cfg.d_vocab, (2, 7), generator=torch.Generator().manual_seed(seed))


def test_in_points_copy_the_residual_and_leave_logits_bitwise(model):
    tokens = _tokens(model)
    with torch.no_grad():
        plain = model(tokens)
        logits, cache = model.run_with_cache(tokens, names=lambda n: n.endswith(IN_SITES) or "resid" in n)
        _, default = model.run_with_cache(tokens)
    assert torch.equal(logits, plain)
    assert not any(n.endswith(("attn_in", "mlp_in", "hook_in")) for n in default.keys())
    last = model.cfg.n_layers - 1
    for layer in range(model.cfg.n_layers):
        assert torch.equal(cache["attn_in", layer], cache["resid_pre", layer])
        mlp_reads = "resid_pre" if model.cfg.parallel_attn_mlp else "resid_mid"
        assert torch.equal(cache["mlp_in", layer], cache[mlp_reads, layer])
    assert torch.equal(cache["ln_final.hook_in"], cache["resid_post", last])


def test_patching_attn_in_changes_only_that_attention(model):
    """Replacing hook_attn_in of layer 1 gives the attn_out of a run whose resid_pre is replaced,
    while the residual stream itself (resid_pre, and resid_mid - attn_out) is untouched."""
    tokens = _tokens(model)
    delta = torch.randn(2, 7, model.cfg.d_model, generator=torch.Generator().manual_seed(1))
    add = lambda x, hook: x + delta  # noqa: E731
    names = ["blocks.1.hook_attn_out", "blocks.1.hook_resid_pre", "blocks.1.hook_mlp_out"]
    with torch.no_grad(), model.hooks(fwd={"blocks.1.hook_attn_in": add}):
        _, via_in = model.run_with_cache(tokens, names=names)
    with torch.no_grad(), model.hooks(fwd={"blocks.1.hook_resid_pre": add}):
        _, via_resid = model.run_with_cache(tokens, names=names)
    with torch.no_grad():
        _, clean = model.run_with_cache(tokens, names=names)
    torch.testing.assert_close(via_in["attn_out", 1], via_resid["attn_out", 1], atol=1e-6, rtol=0)
    assert torch.equal(via_in["resid_pre", 1], clean["resid_pre", 1])
    assert not torch.allclose(via_in["attn_out", 1], clean["attn_out", 1])
    if model.cfg.parallel_attn_mlp:   # the MLP reads resid_pre, which the attention input hook left alone
        torch.testing.assert_close(via_in["mlp_out", 1], clean["mlp_out", 1], atol=0, rtol=0)


def test_patching_mlp_in_changes_only_that_mlp(model):
    tokens = _tokens(model)
    delta = torch.randn(2, 7, model.cfg.d_model, generator=torch.Generator().manual_seed(2))
    names = ["blocks.0.hook_mlp_out", "blocks.0.hook_mlp_in", "blocks.0.hook_attn_out", "blocks.0.hook_resid_post"]
    with torch.no_grad(), model.hooks(fwd={"blocks.0.hook_mlp_in": lambda x, hook: x + delta}):
        _, patched = model.run_with_cache(tokens, names=names[:1] + names[2:])
    with torch.no_grad():
        _, clean = model.run_with_cache(tokens, names=names)
        b = model.structure.blocks[0]
        expect = b.mlp(b.ln2(clean["mlp_in", 0] + delta))      # the HF modules by hand
        if b.mlp_writer is not b.mlp:                          # Gemma-2's post-MLP norm
            expect = b.mlp_writer(expect)
    torch.testing.assert_close(patched["mlp_out", 0], expect, atol=1e-6, rtol=0)
    assert torch.equal(patched["attn_out", 0], clean["attn_out", 0])
    torch.testing.assert_close(patched["resid_post", 0] - patched["mlp_out", 0],
                               clean["resid_post", 0] - clean["mlp_out", 0], atol=1e-6, rtol=0)


def test_gradient_at_attn_in_counts_only_the_attention_path(model):
    tokens = _tokens(model)
    _, cache = model.run_with_cache(tokens, names=["blocks.1.hook_attn_in", "blocks.1.hook_resid_pre"],
                                    grad_metric=lambda logits: logits[:, -1, 3].sum())
    # resid_pre's gradient = the residual path + the attention path, so the two must differ
    assert not torch.allclose(cache["blocks.1.hook_attn_in_grad"], cache["blocks.1.hook_resid_pre_grad"])
    with torch.enable_grad():    # independent: d/dx of the metric through attention 1 alone
        x = cache["blocks.1.hook_attn_in"].clone().requires_grad_(True)
        with model.hooks(fwd={"blocks.1.hook_attn_in": lambda a, hook: x}):
            logits = model(tokens)
        (grad,) = torch.autograd.grad(logits[:, -1, 3].sum(), x)
    torch.testing.assert_close(cache["blocks.1.hook_attn_in_grad"], grad, atol=1e-6, rtol=1e-5)


def test_frozen_hooks_keep_values_and_linearise_gradients(model):
    tokens = _tokens(model)
    with torch.no_grad():
        plain, cache = model.run_with_cache(tokens, names=["ln_final.hook_in"])
    with model.hooks(fwd=frozen_hooks(model)):
        logits, grads = model.run_with_cache(tokens, names=["blocks.0.attn.hook_q"],
                                             grad_metric=lambda lg: lg[:, -1, 5].sum())
    torch.testing.assert_close(logits.detach(), plain, atol=1e-5, rtol=0)
    # frozen patterns: nothing flows back into the queries (autograd finds them unused)
    assert "blocks.0.attn.hook_q_grad" not in grads.keys()
    # frozen final norm: the gradient at its input is w * W_U[:, 5] / s (centred for LayerNorm)
    x = cache["ln_final.hook_in"].clone().requires_grad_(True)
    with torch.enable_grad(), model.hooks(fwd={"ln_final.hook_in": lambda a, hook: x}), \
            model.hooks(fwd=frozen_hooks(model)):
        (grad,) = torch.autograd.grad(model(tokens)[:, -1, 5].sum(), x)
    last = cache["ln_final.hook_in"][:, -1]
    norm = model.structure.final_norm
    eps = float(getattr(norm, model.table.norm_eps_attr))
    centred = last - last.mean(-1, keepdim=True) if model.cfg.norm == "layernorm" else last
    s = (centred.pow(2).mean(-1, keepdim=True) + eps).sqrt()
    g = model.W_U[:, 5] * (norm.weight + model.table.norm_weight_offset)
    if model.cfg.norm == "layernorm":
        g = g - g.mean()
    torch.testing.assert_close(grad[:, -1], (g / s).detach(), atol=1e-5, rtol=1e-4)
