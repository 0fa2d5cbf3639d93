"""Path patching: closed forms on the direct path, and receivers that cannot be reached."""

from __future__ import annotations

import pytest
import torch

from mechscope.patching.path import path_patching
from mechscope.tasks import ioi_task


@pytest.fixture(scope="module")
def task(tiny_gpt2_model):
    return ioi_task(tiny_gpt2_model, n_prompts=4, template_ids=[0])


def test_last_layer_direct_path_equals_head_patching(tiny_gpt2_model, task):
    """For a last-layer head nothing but the unembedding lies downstream, so sender -> logits with
    everything else frozen equals noising that head's z with the last MLP held at its clean value."""
    model = tiny_gpt2_model
    L = model.cfg.n_layers - 1
    res = path_patching(model, task)
    assert res.values.shape == (model.cfg.n_layers, model.cfg.n_heads)
    with torch.no_grad():
        _, src = model.run_with_cache(task.corrupt_tokens, names=[f"blocks.{L}.attn.hook_z"])
        clean_logits, clean = model.run_with_cache(task.clean_tokens, names=[f"blocks.{L}.hook_mlp_out"])
        clean_logits = clean_logits[:, -1]
    for h in range(model.cfg.n_heads):
        def hook(act, _h, h=h):
            act = act.clone()
            act[:, :, h] = src[f"blocks.{L}.attn.hook_z"][:, :, h]
            return act
        with torch.no_grad():
            logits = model.run_with_hooks(task.clean_tokens, fwd={
                f"blocks.{L}.attn.hook_z": hook,
                f"blocks.{L}.hook_mlp_out": lambda a, _h: clean[f"blocks.{L}.hook_mlp_out"]})[:, -1]
        patched = task.score(logits).mean().item()
        assert abs(res.patched_metric[L, h].item() - patched) < 1e-4
    assert res.clean_metric == pytest.approx(task.score(clean_logits).mean().item(), abs=1e-5)


def test_receiver_unreachable_from_later_senders(tiny_gpt2_model, task):
    """A layer-0 receiver's query cannot depend on any head: every effect is exactly zero."""
    res = path_patching(tiny_gpt2_model, task, receivers=[(0, 1, "q"), (0, 2, "k")])
    assert torch.allclose(res.patched_metric, torch.full_like(res.patched_metric, res.clean_metric), atol=1e-5)


def test_receiver_effects_nonzero_from_earlier_layer(tiny_gpt2_model, task):
    res = path_patching(tiny_gpt2_model, task, receivers=[(1, h, "v") for h in range(4)])
    assert res.values[0].abs().max() > 0
    assert torch.allclose(res.patched_metric[1], torch.full((4,), res.clean_metric), atol=1e-5)


@pytest.mark.parametrize("arch", ["gpt2", "llama", "neox"])
def test_direct_route_equals_frozen_forward(arch, monkeypatch):
    """Sender -> logits without a forward (base residual + one head's change of output, then the final
    norm) gives the numbers of the frozen forward pass, on every adapted block layout (GQA, parallel
    attention/MLP); the forward is forced by making the linearity check fail."""
    from mechscope import HookedModel
    from mechscope.patching import path as path_module
    from tests.helpers import gpt2_tokenizer, small_hf_model

    model = HookedModel.from_hf(small_hf_model(arch, n_layers=3), gpt2_tokenizer(), spec=f"random:{arch}")
    task = ioi_task(model, n_prompts=6, template_ids=[0])
    for direction in ("noise", "denoise"):
        config = path_module.PathPatchingConfig(direction=direction)
        fast = path_patching(model, task, config=config)
        with monkeypatch.context() as m:
            m.setattr(path_module, "_attn_out_is_linear_in_z", lambda *a: False)
            slow = path_patching(model, task, config=config)
        assert torch.allclose(fast.patched_metric, slow.patched_metric, atol=1e-4, rtol=1e-4)
        assert fast.values.abs().max() > 0


def test_linearity_check_fails_when_attention_output_is_not_linear(tiny_gpt2_model, task):
    """A model whose attention output is rescaled after the projection (a post-attention norm, say) must
    not take the direct route: the check sees the mismatch."""
    from mechscope.patching.path import _attn_out_is_linear_in_z
    from mechscope.tasks.answer import answer_logits_and_cache

    names = [f"blocks.{layer}.attn.hook_z" for layer in range(2)] + [f"blocks.{layer}.hook_attn_out" for layer in range(2)]
    _, cache = answer_logits_and_cache(tiny_gpt2_model, task.clean_tokens, task.answer_pos, names)
    assert _attn_out_is_linear_in_z(tiny_gpt2_model, cache, task.answer_pos)
    cache["blocks.1.hook_attn_out"] = cache["blocks.1.hook_attn_out"] * 1.5
    assert not _attn_out_is_linear_in_z(tiny_gpt2_model, cache, task.answer_pos)
