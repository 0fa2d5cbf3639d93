"""EAP, EAP-IG and exact edge scores: exact on an affine toy, and exact patching against a loop."""

from __future__ import annotations

import pytest
import torch

from mechscope.circuits.attribution import (
    attribute,
    eap,
    eap_ig_activations,
    eap_ig_inputs,
    exact,
    exact_denoising,
    single_edge_effects,
)
from mechscope.circuits.engine import evaluate
from mechscope.errors import InputError
from tests.circuits.toys import check_against_single_edges, linear_gpt2, random_model, setup_for


@pytest.fixture(scope="module")
def linear_setup():
    return setup_for(linear_gpt2())


@pytest.mark.parametrize("method", [eap, eap_ig_inputs, eap_ig_activations])
def test_scores_over_a_cut_sum_to_the_total_effect_on_an_affine_model(linear_setup, method):
    setup = linear_setup
    g = setup.graph
    scores = method(setup)
    ends = evaluate(setup, torch.stack([g.full(), g.empty()])).mean(1)
    total = float(ends[1] - ends[0])                                   # m(corrupt) - m(clean)
    assert abs(total) > 0.1
    leaving_input = float(scores[0].sum())
    entering_logits = float(scores[:, -1].sum())
    assert leaving_input == pytest.approx(total, abs=1e-5)
    assert entering_logits == pytest.approx(total, abs=1e-5)
    # affine model: every first-order score is the exact single-edge effect, noising or denoising
    torch.testing.assert_close(scores.double(), exact(setup).double(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(scores.double(), exact_denoising(setup).double(), atol=1e-5, rtol=1e-5)


def test_exact_equals_a_one_edge_at_a_time_loop():
    setup = setup_for(random_model("llama"), max_rows=18)
    check_against_single_edges(setup, exact(setup), every=3)


def test_exact_denoising_patches_one_clean_edge_into_the_corrupt_run():
    """For every third edge: m(corrupt) - m(corrupt run with that edge reading its clean source), each
    evaluated alone with the engine on the swapped setup; per-prompt effects average to the scores."""
    setup = setup_for(random_model("llama"), max_rows=18)
    scores = exact_denoising(setup)
    swapped, g = setup.swapped(), setup.graph
    torch.testing.assert_close(swapped.ablated[3], setup.clean_sources[3])
    corrupt = float(evaluate(swapped, g.full()).mean())
    torch.testing.assert_close(evaluate(swapped, g.full()), evaluate(setup, g.empty()), atol=1e-5, rtol=0)
    for s, d in g.edge_index().tolist()[::3]:
        mask = g.full()
        mask[s, d] = False                                           # edge s->d carries the clean value
        assert float(scores[s, d]) == pytest.approx(corrupt - float(evaluate(swapped, mask).mean()), abs=1e-5)
    assert float(scores[~g.allowed].abs().sum()) == 0.0
    per_prompt = single_edge_effects(setup, denoising=True)
    assert per_prompt.shape == (g.n_edges, setup.n_prompts)
    torch.testing.assert_close(per_prompt.mean(1), g.to_edge_vector(scores))
    # on a non-linear model the two directions differ: interactions between edges are not additive
    assert not torch.allclose(g.to_edge_vector(exact(setup)), g.to_edge_vector(scores), atol=1e-4)
    with pytest.raises(InputError, match="patching"):
        setup_for(random_model("llama"), ablation="mean").swapped()


def test_eap_ig_tracks_exact_on_a_random_model():
    """Not an identity on a non-linear model, but the sign convention is shared: scores correlate."""
    setup = setup_for(random_model("gpt2"))
    ex = setup.graph.to_edge_vector(exact(setup))
    ig = setup.graph.to_edge_vector(eap_ig_inputs(setup, steps=5))
    assert torch.corrcoef(torch.stack([ex, ig]))[0, 1] > 0.8


def test_attribute_reports_its_ends_and_rejects_bad_arguments(linear_setup):
    result = attribute(linear_setup, "eap")
    assert result.clean_metric != result.ablated_metric
    assert len(result.to_dict()["edges"]) == linear_setup.graph.n_edges
    with pytest.raises(InputError, match="unknown method"):
        attribute(linear_setup, "acdc-fast")
    with pytest.raises(InputError, match="steps"):
        attribute(linear_setup, "eap-ig", steps=0)
