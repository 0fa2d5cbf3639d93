"""Causal tracing against an independent one-forward-per-cell computation, and its exactness."""

from __future__ import annotations

import pytest
import torch

from mechscope.errors import InputError
from mechscope.memory.prompts import Fact, subject_span
from mechscope.memory.trace_summary import token_roles, trace_facts
from mechscope.memory.tracing import KINDS, TraceConfig, causal_trace, draw_noise, run_restorations
from mechscope.model.interventions import patch_from


def _reference_cell(model, fact, noise, restore_names, pos):
    """One forward per noise draw through the plain HF model with inputs_embeds (the noise is added
    outside our hooks), the clean state put back with patch_from: the reference's way."""
    ids, first, end = subject_span(model, fact.prompt, fact.subject)
    tokens = torch.tensor([ids])
    _, cache = model.run_with_cache(tokens, names=restore_names or ["hook_embed"])
    answer = model.to_single_token(fact.target)
    probs = []
    for k in range(noise.shape[0]):
        embeds = model.hf_model.get_input_embeddings()(tokens).clone()
        embeds[0, first:end] += noise[k]
        with torch.no_grad(), model.hooks(fwd={n: patch_from(cache, positions=[pos]) for n in restore_names}):
            logits = model.hf_model(inputs_embeds=embeds).logits
        probs.append(logits[0, -1].softmax(-1)[answer])
    return float(torch.stack(probs).mean())


def test_trace_matches_one_forward_per_cell(organism, organism_facts):
    fact = organism_facts[0]
    config = TraceConfig(n_samples=3, window=3)
    trace = causal_trace(organism, fact, config)
    _, first, end = subject_span(organism, fact.prompt, fact.subject)
    noise = draw_noise(organism, end - first, config)
    assert trace.p_corrupt == pytest.approx(_reference_cell(organism, fact, noise, [], 0), abs=1e-6)
    last = len(trace.tokens) - 1
    # ("resid", 3, end - 1) is a cell causal_trace does not run (the last layer before the last token)
    for kind, layer, pos in [("resid", 1, end - 1), ("mlp", 0, last), ("attn", 2, first), ("mlp", 3, end - 1),
                             ("resid", 3, end - 1), ("resid", 3, last)]:
        layers = [layer] if kind == "resid" else range(max(0, layer - 1), min(4, layer + 2))
        names = [f"blocks.{lay}.{KINDS[kind]}" for lay in layers]
        expected = _reference_cell(organism, fact, noise, names, pos)
        assert float(trace.scores[kind][layer, pos]) == pytest.approx(expected, abs=1e-5), (kind, layer, pos)


def test_restoring_every_state_gives_the_clean_run(organism, organism_facts):
    fact = organism_facts[3]
    ids, first, end = subject_span(organism, fact.prompt, fact.subject)
    tokens = torch.tensor(ids)
    names = [f"blocks.{layer}.{site}" for layer in range(4) for site in KINDS.values()]
    logits, cache = organism.run_with_cache(tokens[None], names=names)
    clean = {n: cache[n] for n in names}
    answer = organism.to_single_token(fact.target)
    p_clean = float(logits[0, -1].softmax(-1)[answer])
    noise = draw_noise(organism, end - first, TraceConfig(n_samples=4))
    every = [(n, 0, p) for n in names for p in range(len(ids))]
    resid0 = [("blocks.0.hook_resid_post", 0, p) for p in range(len(ids))]
    probs = run_restorations(organism, tokens, (first, end), noise, [[], every, resid0], clean, answer)
    assert float(probs[0]) < p_clean - 0.1               # the noise does corrupt the fact
    assert float(probs[1]) == p_clean
    assert float(probs[2]) == pytest.approx(p_clean, rel=1e-6)


def test_positions_before_the_subject_have_no_effect_and_last_layer_resid_recovers_all(organism, organism_facts):
    trace = causal_trace(organism, organism_facts[1], TraceConfig(n_samples=2))
    first = trace.subject_range[0]
    for kind in trace.kinds:
        assert torch.all(trace.indirect_effect(kind)[:, :first] == 0)
    assert float(trace.scores["resid"][-1, -1]) == pytest.approx(trace.p_clean, abs=1e-5)


def test_trace_runs_on_llama(stories260k):
    trace = causal_trace(stories260k, Fact("Once upon a time there was a little girl named", "little girl",
                                           " Lily"), TraceConfig(n_samples=2))
    assert trace.scores["resid"].shape == (stories260k.cfg.n_layers, len(trace.tokens))
    assert float(trace.scores["resid"][-1, -1]) == pytest.approx(trace.p_clean, abs=1e-5)


def test_subject_span_finds_the_subject_tokens(organism):
    ids, first, end = subject_span(organism, "The color of the blagri is", "blagri")
    assert "".join(organism.to_str_tokens(torch.tensor(ids[first:end]))).strip() == "blagri"
    ids, first, end = subject_span(organism, "blagri is", "blagri")
    assert (first, end) == (1, len(ids) - 1)


def test_bad_input_is_refused(organism):
    with pytest.raises(InputError, match="does not occur"):
        causal_trace(organism, Fact("The color of the blagri is", "zorvin", " gold"))
    with pytest.raises(InputError, match="tokens for this model"):
        causal_trace(organism, Fact("The color of the blagri is", "blagri", " goldenrod purple"))
    with pytest.raises(InputError, match="noise must be"):
        causal_trace(organism, Fact("The color of the blagri is", "blagri", " gold"), noise=torch.zeros(2, 1, 128))


def test_token_roles():
    assert token_roles(8, 2, 5) == [None, None, 0, 1, 2, 3, 4, 5]
    assert token_roles(4, 1, 3) == [None, 0, 2, 5]


def test_summary_averages_by_role(organism, organism_facts):
    summary = trace_facts(organism, organism_facts[:3], TraceConfig(n_samples=2, kinds=("mlp",)))
    t = summary.traces[0]
    assert summary.effects["mlp"].shape == (4, 6)
    manual = sum(float(tr.indirect_effect("mlp")[2, -1]) for tr in summary.traces) / 3
    assert float(summary.effects["mlp"][2, 5]) == pytest.approx(manual, abs=1e-6)
    assert t.figure().data and summary.figure().data and "indirect_effect" in t.to_dict()
