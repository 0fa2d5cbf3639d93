"""Head mean-ablation against a hand computation: the head's contribution to attn_out swapped for its mean's."""

from __future__ import annotations

import pytest
import torch

from mechscope.patching.ablation import ablated_metric, circuit_faithfulness, head_means
from mechscope.tasks import ioi_task


@pytest.fixture(scope="module")
def task(tiny_gpt2_model):
    return ioi_task(tiny_gpt2_model, n_prompts=4, template_ids=[0])


def test_mean_ablated_heads_equal_swapping_their_output_by_hand(tiny_gpt2_model, task):
    """Mean-ablating head h of layer L at hook_z equals attn_out - z_h W_O[h] + mean_h W_O[h]."""
    model = tiny_gpt2_model
    heads = {(0, 1), (1, 0), (1, 2)}
    means = head_means(model, task.corrupt_tokens)
    got = ablated_metric(model, task, heads, means)
    names = [f"blocks.{layer}.attn.hook_z" for layer in range(model.cfg.n_layers)]

    def swap(layer):
        def hook(attn_out, _hook):
            z = live[names[layer]]                                         # [batch pos head d_head]
            for at, h in heads:
                if at == layer:
                    delta = (means[layer][:, h] - z[:, :, h]) @ model.W_O[layer, h]
                    attn_out = attn_out + delta
            return attn_out
        return hook

    live: dict[str, torch.Tensor] = {}
    fwd = {name: (lambda a, hook: live.__setitem__(hook.name, a)) for name in names}
    fwd |= {f"blocks.{layer}.hook_attn_out": swap(layer) for layer in (0, 1)}
    with torch.no_grad():
        clean_logits = model(task.clean_tokens)[:, task.answer_pos]
        logits = model.run_with_hooks(task.clean_tokens, fwd=fwd)[:, task.answer_pos]
    expected = task.score(logits, reference_logits=clean_logits)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)
    assert not torch.allclose(got, task.score(clean_logits, reference_logits=clean_logits), atol=1e-3)


def test_faithfulness_endpoints(tiny_gpt2_model, task):
    """Keeping every head is the full model (faithfulness 1); keeping none is the all-ablated run."""
    model = tiny_gpt2_model
    every = [(layer, h) for layer in range(model.cfg.n_layers) for h in range(model.cfg.n_heads)]
    full = circuit_faithfulness(model, task, every)
    assert full.circuit_metric == pytest.approx(full.full_metric, abs=1e-5)
    assert full.faithfulness == pytest.approx(1.0, abs=1e-5)
    empty = circuit_faithfulness(model, task, [])
    assert empty.circuit_metric == pytest.approx(empty.ablated_all_metric, abs=1e-5)
