"""Steering and the day circle on a real model, checked against hand computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mechscope
from mechscope.errors import InputError, NotApplicableError
from mechscope.geometry.circle import (
    circle_intervention,
    cycle_activations,
    cycle_prompts,
    moved_answer_logits,
)
from mechscope.geometry.circle_probe import circle_plane_edit, circle_targets, fit_circle
from mechscope.geometry.steering import (
    pair_log_odds,
    prompt_batches,
    steer,
    steered_logits,
    steering_direction,
)
from mechscope.geometry.word_pairs import default_concepts
from mechscope.model.interventions import add_vector


@pytest.fixture(scope="module")
def organism():
    return mechscope.load("organism:tiny-gpt2")


def test_steered_logits_match_unembedding_the_shifted_stream_by_hand(organism):
    m = organism
    hook = f"blocks.{m.cfg.n_layers - 1}.hook_resid_post"
    batches = prompt_batches(m, ["Then the", "I saw the"])
    v = torch.randn(m.cfg.d_model, generator=torch.Generator().manual_seed(0)) * 5
    got = steered_logits(m, batches, hook, v)
    want = []
    for tokens in batches:
        _, cache = m.run_with_cache(tokens, names=[hook])
        resid = cache[hook][:, -1] + v
        want.append(m.unembed(m.ln_final(resid)))
    torch.testing.assert_close(got, torch.cat(want).float(), rtol=1e-5, atol=1e-4)


def test_split_half_steering_moves_held_out_log_odds_and_reads_zero_at_alpha_zero(organism):
    concepts = default_concepts(organism)
    c = concepts["singular→plural"]
    build = type(c)(c.name, c.base_words[::2], c.target_words[::2], c.base_ids[::2], c.target_ids[::2])
    held = type(c)(c.name, c.base_words[1::2], c.target_words[1::2], c.base_ids[1::2], c.target_ids[1::2])
    r = steer(organism, steering_direction(organism, build), held, alphas=(-0.5, 0.0, 0.5),
              off_target={"lower→capitalised": concepts["lower→capitalised"]})
    assert r.target[1] == 0.0
    assert r.target[0] < 0 < r.target[2] and r.slope > 1.0
    assert abs(r.off_slopes["lower→capitalised"]) < 0.5 * r.slope
    logits = torch.zeros(1, organism.cfg.d_vocab)
    logits[0, held.target_ids] = 2.0
    assert float(pair_log_odds(logits, held)[0]) == 2.0
    with pytest.raises(InputError, match="two α"):
        steer(organism, steering_direction(organism, build), held, alphas=(0.5,))


def test_day_prompts_and_the_circle_plane_edit_in_the_model(organism):
    cp = cycle_prompts(organism, "days")
    assert cp.period == 7 and set(cp.starts) == set(range(7))
    assert all(organism.to_tokens(p)[0, cp.position] == cp.word_ids[s] for p, s in zip(cp.prompts, cp.starts,
                                                                                        strict=True))
    hook = "blocks.0.hook_resid_pre"
    acts = cycle_activations(organism, cp, [hook])[hook]
    fit = fit_circle(acts, cp.starts, 7)
    # capture the edited activation with a second hook on the same point: the probe must read the target
    moved = circle_plane_edit(acts, fit, np.full(len(acts), 3))
    seen = {}

    def capture(act, hook_point):
        seen["act"] = act[:, cp.position].detach().double().numpy()

    delta = torch.from_numpy(moved - acts).float()[:, None, :]
    with torch.no_grad(), organism.hooks(fwd={hook: [add_vector(delta, positions=[cp.position]), capture]}):
        organism(cp.tokens)
    reading = ((seen["act"] - fit.mean) @ fit.components.T) @ fit.weights
    np.testing.assert_allclose(reading, circle_targets(np.full(len(acts), 3), 7), atol=1e-4)
    accuracy, diffs = circle_intervention(organism, cp, hook, acts, fit)
    assert 0.0 <= accuracy <= 1.0 and len(diffs) == 6 * len(cp.prompts)


@pytest.mark.parametrize("hook", ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_post", "blocks.3.hook_resid_post"])
def test_moved_runs_grown_at_the_hook_equal_one_full_run_each(organism, hook):
    """moved_answer_logits runs the blocks below the hook once and grows k edited copies there: the same
    last-position logits as k separate edited forwards; the last resid_post feeds no block (None)."""
    cp = cycle_prompts(organism, "days")
    gen = torch.Generator().manual_seed(0)
    deltas = torch.randn(3, len(cp.prompts), organism.cfg.d_model, generator=gen)
    grown = moved_answer_logits(organism, cp.tokens, hook, cp.position, deltas)
    if hook == f"blocks.{organism.cfg.n_layers - 1}.hook_resid_post":
        assert grown is None
        return
    assert grown.shape == (3, len(cp.prompts), organism.cfg.d_vocab)
    for j in range(3):
        with torch.no_grad(), organism.hooks(fwd={hook: add_vector(deltas[j][:, None, :], positions=[cp.position])}):
            one = organism(cp.tokens)[:, -1]
        torch.testing.assert_close(grown[j], one, atol=1e-5, rtol=1e-5)
    assert float((grown[0] - grown[1]).abs().max()) > 1e-2     # the edits move the answer
    words = moved_answer_logits(organism, cp.tokens, hook, cp.position, deltas, vocab=cp.word_ids)
    torch.testing.assert_close(words, grown[..., cp.word_ids], atol=1e-5, rtol=1e-5)   # only the cycle words


def test_a_model_without_day_tokens_is_not_applicable(stories260k):
    with pytest.raises(NotApplicableError, match="one token"):
        cycle_prompts(stories260k, "days")
