"""Keys and values of MLP units against direct computations."""

from __future__ import annotations

import pytest
import torch

from mechscope.errors import InputError
from mechscope.memory.neurons import unit_keys_values, unit_logit_attribution, value_projection
from mechscope.memory.prompts import encode


def test_keys_are_the_top_activations(organism):
    tokens = torch.randint(0, organism.cfg.d_vocab, (6, 20), generator=torch.Generator().manual_seed(0))
    result = unit_keys_values(organism, 2, [5, 77], tokens, k=4)
    _, cache = organism.run_with_cache(tokens, names="blocks.2.mlp.hook_post")
    acts = cache["blocks.2.mlp.hook_post"]
    best = acts[..., 5].flatten().topk(4)
    assert [c["activation"] for c in result.top_contexts[0]] == pytest.approx(best.values.tolist())
    first = result.top_contexts[0][0]
    assert float(acts[first["sequence"], first["position"], 5]) == pytest.approx(first["activation"])
    summed = (acts[..., 5] + acts[..., 77]).max()
    assert result.top_contexts[2][0]["activation"] == pytest.approx(float(summed), rel=1e-5)
    assert result.labels == ["unit 5", "unit 77", "set"]
    assert result.figure().data and result.to_dict()["units"] == [5, 77]


def test_values_are_the_vocabulary_projection_of_w_out(organism):
    c_proj = organism.hf_model.transformer.h[1].mlp.c_proj.weight     # Conv1D: [d_mlp d_model]
    expected = c_proj[9].detach() @ organism.hf_model.lm_head.weight.detach().T
    torch.testing.assert_close(value_projection(organism, 1, [9])[0], expected)
    result = unit_keys_values(organism, 1, [9], torch.zeros(1, 4, dtype=torch.long), k=3)
    top = expected.topk(3)
    assert [v for _, v in result.value_top[0]] == pytest.approx(top.values.tolist())


def test_logit_attribution_sums_to_the_direct_mlp_contribution(organism, organism_facts):
    fact = organism_facts[0]
    scores = unit_logit_attribution(organism, fact)
    answer = organism.to_single_token(fact.target)
    _, cache = organism.run_with_cache(torch.tensor([encode(organism, fact.prompt)]), names=[f"blocks.{layer}.hook_mlp_out" for layer in range(4)])
    for layer in range(4):
        direct = (cache[f"blocks.{layer}.hook_mlp_out"][0, -1] - organism.b_out[layer]) @ organism.W_U[:, answer]
        assert float(scores[layer].sum()) == pytest.approx(float(direct), rel=1e-4, abs=1e-4)


def test_bad_units(organism):
    with pytest.raises(InputError, match="units"):
        unit_keys_values(organism, 0, [organism.cfg.d_mlp])
    with pytest.raises(InputError, match="out of range"):
        unit_keys_values(organism, 9, [1])
