"""Interventions and gradients through hooks, against hand computations on the plain model."""

from __future__ import annotations

import re

import pytest
import torch

from mechscope import HookedModel, act_name
from mechscope.errors import HookNameError, HookShapeError, InputError
from tests.helpers import ARCHES, small_hf_model

TEXT = "When Mary and John went to the store, John gave a drink to"


@pytest.fixture(scope="module", params=ARCHES)
def model(request, tokenizer):
    return HookedModel.from_hf(small_hf_model(request.param, seed=1), tokenizer)


def test_zero_ablating_a_head_equals_zeroing_its_weights(model):
    """hook_z[:, :, h] = 0 is the same as zeroing head h's columns of the output projection."""
    layer, head, d = 0, 1, model.cfg.d_head
    tokens = model.to_tokens(TEXT)

    def ablate(z, hook):
        z = z.clone()
        z[:, :, head] = 0
        return z

    with torch.no_grad():
        hooked = model.run_with_hooks(tokens, fwd={f"blocks.{layer}.attn.hook_z": ablate})
        out_proj = model.structure.blocks[layer].out_proj
        saved = out_proj.weight.detach().clone()
        if model.table.out_proj_is_conv1d:
            out_proj.weight[head * d:(head + 1) * d, :] = 0
        else:
            out_proj.weight[:, head * d:(head + 1) * d] = 0
        try:
            by_hand = model(tokens)
        finally:
            out_proj.weight.copy_(saved)
    torch.testing.assert_close(hooked, by_hand, atol=1e-5, rtol=0)
    assert not torch.allclose(hooked, model(tokens).detach(), atol=1e-4)


@pytest.mark.parametrize("site", ["resid_pre", "resid_mid", "attn_out", "mlp_out", "resid_post", "z", "q", "k",
                                  "v", "pattern", "result", "pre", "post"])
def test_patching_cache_into_same_input_changes_nothing(model, site):
    if site == "resid_mid" and model.cfg.parallel_attn_mlp:
        pytest.skip("parallel blocks have no resid_mid")
    tokens = model.to_tokens(TEXT)
    names = [act_name(site, layer) for layer in range(model.cfg.n_layers)]
    logits, cache = model.run_with_cache(tokens, names=names + ["blocks.0.attn.hook_pattern"])
    with torch.no_grad():
        patched = model.run_with_hooks(tokens, fwd={n: (lambda act, hook: cache[hook.name]) for n in names})
    torch.testing.assert_close(patched, logits, atol=1e-5, rtol=0)


def test_resid_mid_replacement_reaches_the_mlp(model):
    if model.cfg.parallel_attn_mlp:
        pytest.skip("parallel blocks have no resid_mid")
    tokens = model.to_tokens(TEXT)
    delta = torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names=["blocks.0.hook_resid_mid"])
        with model.hooks(fwd={"blocks.0.hook_resid_mid": lambda a, h: a + delta}):
            _, hooked = model.run_with_cache(tokens, names=["blocks.0.hook_resid_mid", "blocks.0.hook_resid_post"])
    torch.testing.assert_close(hooked["resid_mid", 0], cache["resid_mid", 0] + delta, atol=1e-5, rtol=0)


def test_gradients_through_hooks_equal_autograd(model):
    tokens = model.to_tokens(TEXT)
    target = tokens[0, -1]

    def metric(logits):
        return logits[0, -2].log_softmax(-1)[target]

    name = "blocks.1.hook_resid_pre"
    _, cache = model.run_with_cache(tokens, names=[name, "blocks.0.attn.hook_z"], grad_metric=metric)
    assert all(p.grad is None for p in model.hf_model.parameters()), "run_with_cache must not touch .grad"
    # autograd by hand: the residual entering block 1 is a leaf we feed through block-1 onward
    captured = {}

    def grab(act, hook):
        act = act.detach().requires_grad_(True)
        captured["x"] = act
        return act

    with torch.enable_grad(), model.hooks(fwd={name: grab}):
        metric(model(tokens)).backward()
    torch.testing.assert_close(cache[name + "_grad"], captured["x"].grad, atol=1e-6, rtol=1e-5)
    assert cache["blocks.0.attn.hook_z_grad"].shape == cache["blocks.0.attn.hook_z"].shape
    model.hf_model.zero_grad(set_to_none=True)


def test_backward_hook_sees_and_can_scale_gradient(model):
    tokens = model.to_tokens(TEXT)
    seen = {}

    def observe(grad, hook):
        seen[hook.name] = grad.clone()

    with torch.enable_grad(), model.hooks(bwd={"blocks.0.hook_mlp_out": observe}):
        model(tokens)[0, -1, 0].backward()
    assert seen["blocks.0.hook_mlp_out"].shape == (1, tokens.shape[1], model.cfg.d_model)
    model.hf_model.zero_grad(set_to_none=True)


def test_hooks_removed_on_exception(model):
    tokens = model.to_tokens(TEXT)
    with torch.no_grad():
        before = model(tokens)
        with pytest.raises(RuntimeError, match="boom"), model.hooks(
                fwd={"blocks.0.attn.hook_pattern": lambda a, h: (_ for _ in ()).throw(RuntimeError("boom"))}):
            model(tokens)
        after = model(tokens)
    assert torch.equal(before, after)
    for b in model.structure.blocks:
        assert not hasattr(b.attn, "_mechscope_attn")
        assert not b.block._forward_pre_hooks and not b.block._forward_hooks


def test_wrong_shape_names_the_hook(model):
    with pytest.raises(HookShapeError, match=r"blocks\.0\.hook_attn_out.*expected"):
        model.run_with_hooks(model.to_tokens(TEXT), fwd={"blocks.0.hook_attn_out": lambda a, h: a[:, :1]})


def test_unknown_hook_suggests_closest(model):
    with pytest.raises(HookNameError, match="Did you mean 'blocks.0.hook_resid_post'"):
        model.run_with_cache(model.to_tokens(TEXT), names=["blocks.0.hook_resid_pots"])


def test_too_long_sequence(model):
    with pytest.raises(InputError, match="longer than this model's context"):
        model(torch.zeros(1, model.cfg.n_ctx + 1, dtype=torch.long))


def test_names_filters(model):
    tokens = model.to_tokens(TEXT)
    _, by_regex = model.run_with_cache(tokens, names=re.compile(r"hook_resid_post$"))
    _, by_fn = model.run_with_cache(tokens, names=lambda n: n.endswith("hook_resid_post"))
    _, by_alias = model.run_with_cache(tokens, names=[("resid_post", 0), ("resid_post", 1)])
    assert set(by_regex) == set(by_fn) == set(by_alias) == {"blocks.0.hook_resid_post", "blocks.1.hook_resid_post"}
    _, half = model.run_with_cache(tokens, names=re.compile("resid_post"), dtype=torch.float16, device="cpu")
    assert half["resid_post", 0].dtype == torch.float16


def test_a_string_is_one_exact_name_never_a_pattern(tokenizer):
    """On a 12-layer model "blocks.1" once selected layers 1, 10 and 11 as a regex; now it is an error."""
    model = HookedModel.from_hf(small_hf_model("gpt2", n_layers=12, d_model=32, n_heads=2), tokenizer)
    for bad in ("blocks.1", "resid_post|pattern", "hook_resid_post$"):
        with pytest.raises(HookNameError, match="unknown hook point"):
            model.resolve_names(bad)
        with pytest.raises(HookNameError):
            with model.hooks(fwd={bad: lambda a, h: None}):
                pass
    with pytest.raises(HookNameError, match="Did you mean 'blocks.1.hook_resid_post'"):
        model.resolve_names("blocks.1.hook_resid_pst")
    assert model.resolve_names("blocks.1.hook_resid_post") == ["blocks.1.hook_resid_post"]
    assert model.resolve_names(("resid_post", 1)) == ["blocks.1.hook_resid_post"]
    assert model.resolve_names("ln_final.hook_normalized") == ["ln_final.hook_normalized"]
    assert model.resolve_names(re.compile(r"^blocks\.1\.hook_resid_post$")) == ["blocks.1.hook_resid_post"]
    assert len(model.resolve_names(re.compile(r"blocks\.1\d?\.hook_resid_post"))) == 3   # 1, 10, 11
    with pytest.raises(HookNameError, match="no hook point matches"):
        model.resolve_names(re.compile("nothing_like_this"))
    seen = []
    with torch.no_grad(), model.hooks(fwd={re.compile(r"hook_resid_post$"): lambda a, h: seen.append(h.layer)}):
        model(model.to_tokens(TEXT))
    assert seen == list(range(12))
