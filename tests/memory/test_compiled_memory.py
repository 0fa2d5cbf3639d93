"""The compiled key-value organism: tracing and the key/value analysis find its planted layers and units."""

from __future__ import annotations

import pytest
import torch

from mechscope.memory.facts import known_facts, planted_facts
from mechscope.memory.neurons import unit_keys_values, unit_logit_attribution, value_projection
from mechscope.memory.prompts import encode
from mechscope.memory.trace_summary import trace_facts
from mechscope.memory.tracing import TraceConfig


@pytest.fixture(scope="module")
def memory_organism():
    import mechscope

    return mechscope.load("organism:compiled-memory")


@pytest.fixture(scope="module")
def planted(memory_organism):
    return {f["prompt"]: f for f in planted_facts(memory_organism)}


def test_every_planted_fact_is_known(memory_organism, planted):
    facts = known_facts(memory_organism)
    assert len(planted) == 32 and {f.prompt for f in facts} == set(planted)


def test_values_and_attribution_find_the_planted_unit_of_every_fact(memory_organism, planted):
    for fact in known_facts(memory_organism):
        truth = planted[fact.prompt]
        scores = unit_logit_attribution(memory_organism, fact)               # at the last token
        layer, unit = divmod(int(scores.argmax()), scores.shape[1])
        assert (layer, unit) == (truth["layer"], truth["unit"]), fact.prompt
        top = value_projection(memory_organism, layer, [unit])[0].argmax()
        assert memory_organism.tokenizer.decode([int(top)]).strip() == truth["attribute"]


def test_keys_find_each_units_own_prompt(memory_organism, planted):
    prompts = sorted(planted)
    tokens = torch.tensor([encode(memory_organism, p) for p in prompts])
    for layer in (1, 2):
        units = [f["unit"] for f in planted.values() if f["layer"] == layer]
        result = unit_keys_values(memory_organism, layer, units, tokens, k=1)
        for unit, ctx in zip(units, result.top_contexts, strict=False):
            own = next(p for p, f in planted.items() if f["layer"] == layer and f["unit"] == unit)
            assert ctx[0]["sequence"] == prompts.index(own) and ctx[0]["position"] == tokens.shape[1] - 1


def test_tracing_finds_the_planted_layer_at_the_last_token(memory_organism, planted):
    facts = known_facts(memory_organism)
    summary = trace_facts(memory_organism, facts, TraceConfig(n_samples=10, window=1, kinds=("mlp",)))
    assert float(summary.effects["mlp"][:, 2].abs().max()) == 0.0            # nothing at the subject token
    for layer in (1, 2):
        group = [t for t, f in zip(summary.traces, facts, strict=True) if planted[f.prompt]["layer"] == layer]
        mean = torch.stack([t.indirect_effect("mlp")[:, -1] for t in group]).mean(0)
        assert int(mean.argmax()) == layer and float(mean[layer]) > 2 * float(mean[3 - layer]), mean
