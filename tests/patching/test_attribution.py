"""Attribution patching: exact where the metric is linear in the activation; cheap; sensible."""

from __future__ import annotations

import pytest
import torch

from mechscope.patching.activation import activation_patching
from mechscope.patching.attribution import attribution_patching, compare_with_exact
from mechscope.patching.partial_forward import Site
from mechscope.tasks import ioi_task


@pytest.fixture(scope="module")
def task(tiny_gpt2_model):
    return ioi_task(tiny_gpt2_model, n_prompts=4, template_ids=[0])


def test_exact_when_metric_is_linear_in_the_activation(tiny_gpt2_model, task):
    """logit diff is linear in ln_final's output (logits = x W_U + b), so the first-order
    estimate must equal exact patching of that activation, position by position."""
    model = tiny_gpt2_model
    name = "ln_final.hook_normalized"
    sites = [Site(name, pos=p) for p in range(task.n_pos)]
    exact = activation_patching(model, task, sites=sites)
    attr = attribution_patching(model, task, sites=(name,))
    torch.testing.assert_close(attr.values[name], exact.values.float(), atol=1e-4, rtol=1e-4)
    assert exact.values[-1].abs() > 0.5      # the answer position carries the effect


def test_resid_pre_layer0_attribution_matches_closed_form(tiny_gpt2_model, task):
    """At layer 0, positions where clean and corrupt tokens agree have zero delta, so zero estimate."""
    attr = attribution_patching(tiny_gpt2_model, task, sites=("resid_pre",))
    same = ~task.differing_positions()
    assert torch.allclose(attr.values["resid_pre"][0, same], torch.zeros(int(same.sum())))
    assert attr.values["resid_pre"][0, ~same].abs().sum() > 0


def test_agreement_with_exact_patching(tiny_gpt2_model, task):
    attr = compare_with_exact(tiny_gpt2_model, task, sites=("resid_pre", "z"))
    for site in ("resid_pre", "z"):
        a = attr.agreement[site]
        assert a.pearson > 0.5, (site, a)
    d = attr.to_dict()
    assert set(d["values"]) == {"resid_pre", "z"}
    assert d["agreement"]["z"]["k"] > 0


def test_attribution_does_not_touch_weight_grads(tiny_gpt2_model, task):
    model = tiny_gpt2_model
    for p in model.hf_model.parameters():
        p.grad = None
    attribution_patching(model, task, sites=("z",))
    assert all(p.grad is None for p in model.hf_model.parameters())


def test_full_head_hook_name_is_estimated_per_position_and_sums_to_the_head_grid(tiny_gpt2_model, task):
    """A full hook name is estimated per position (summed over heads); the "z" grid sums over positions
    instead, and both are the same total."""
    name = "blocks.1.attn.hook_z"
    attr = attribution_patching(tiny_gpt2_model, task, sites=(name, "z"))
    assert attr.values[name].shape == (task.n_pos,)
    per_head_pos = attribution_patching(tiny_gpt2_model, task, sites=("z",), per_position_heads=True).values["z"]
    assert per_head_pos.shape == (tiny_gpt2_model.cfg.n_layers, tiny_gpt2_model.cfg.n_heads, task.n_pos)
    torch.testing.assert_close(attr.values[name], per_head_pos[1].sum(0), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(attr.values["z"][1], per_head_pos[1].sum(1), atol=1e-5, rtol=1e-4)
