"""Selection, ACDC and faithfulness curves; recovery of a planted circuit."""

from __future__ import annotations

import math

import pytest
import torch

from mechscope.circuits.acdc import acdc
from mechscope.circuits.attribution import attribute
from mechscope.circuits.faithfulness import faithfulness_curve, summarise
from mechscope.circuits.graph import Graph
from mechscope.circuits.selection import greedy, select, threshold, top_n
from mechscope.circuits.truth import roc_auc
from mechscope.errors import InputError
from tests.circuits.toys import PLANTED_EDGES, planted_gpt2, random_model, setup_for


@pytest.fixture(scope="module")
def planted():
    return setup_for(planted_gpt2())


@pytest.mark.parametrize("method", ["eap", "eap-ig", "eap-ig-activations", "exact"])
def test_attributions_rank_the_planted_edges_first(planted, method):
    g = planted.graph
    scores = attribute(planted, method).scores
    assert roc_auc(g, scores, g.mask_from_edges(PLANTED_EDGES)) == 1.0


def test_acdc_at_its_documented_tau_returns_the_planted_edges(planted):
    g = planted.graph
    found = acdc(planted, tau=0.01, objective="metric")
    assert sorted(g.edges_of(found.mask)) == sorted(PLANTED_EDGES)
    assert found.n_forwards < g.n_edges              # dead destinations cost no forward
    assert roc_auc(g, found.scores.scores, g.mask_from_edges(PLANTED_EDGES)) == 1.0


def test_acdc_rejects_bad_tau_and_objective(planted):
    for tau in (0.0, -1.0):
        with pytest.raises(InputError, match="tau"):
            acdc(planted, tau=tau)
    with pytest.raises(InputError, match="objective"):
        acdc(planted, tau=0.1, objective="loss")


def test_selections():
    g = Graph(2, 2)
    scores = g.from_edge_vector(torch.linspace(-1, 1, g.n_edges))
    assert int(top_n(g, scores, 5).sum()) == 5
    assert torch.equal(threshold(g, scores, 0.9), (scores.abs() >= 0.9) & g.allowed)
    mask = greedy(g, scores, 6)
    assert int(mask.sum()) == 6
    # grown from the logits: every kept edge enters the logits or a node that itself sends a kept edge
    kept = [e.split("->") for e in g.edges_of(mask)]
    reached = {"logits"} | {src.split(".")[0] for src, _ in kept if src != "input"}
    assert all(dst in reached for _, dst in kept)
    assert not torch.equal(mask, top_n(g, scores, 6))     # the largest edges are not all connected
    with pytest.raises(InputError, match="selection"):
        select(g, scores, "random", 3)


def test_summaries_by_hand():
    cpr, cmd, needed = summarise([0.0, 0.5, 1.0], [0.0, 0.8, 1.0])
    assert cpr == pytest.approx(0.25 * 0.8 + 0.25 * 1.8)
    assert cmd == pytest.approx(0.25 * 1.2 + 0.25 * 0.2)
    assert needed == {"0.5": 0.5, "0.8": 0.5, "0.9": 1.0}
    nan = summarise([0.0, 1.0], [0.0, math.nan])
    assert math.isnan(nan[0]) and math.isnan(nan[2]["0.8"])


def test_curve_runs_from_empty_to_full():
    setup = setup_for(random_model("gpt2"), ablation="mean")
    curve = faithfulness_curve(setup, attribute(setup, "eap"))
    assert curve.n_edges[0] == 0 and curve.n_edges[-1] == setup.graph.n_edges
    assert curve.faithfulness[0] == pytest.approx(0.0, abs=1e-6)
    assert curve.faithfulness[-1] == pytest.approx(1.0, abs=1e-5)
    assert curve.figure().data


@pytest.mark.slow
def test_eap_ig_top_tenth_is_at_least_as_faithful_as_eap_on_tiny_gpt2_ioi():
    """Issue #16 acceptance: on tiny-gpt2 IOI (64 prompts), EAP-IG's top 10% of edges are at least as
    faithful as EAP's (measured 0.967 vs 0.952; see bench_circuits.py --agreement)."""
    import mechscope
    from mechscope.circuits import CircuitSetup
    from mechscope.circuits.engine import mean_metric
    from mechscope.tasks import get_task

    model = mechscope.load("organism:tiny-gpt2")
    setup = CircuitSetup.from_task(model, get_task(model, "ioi", n_prompts=64, seed=0), ablation="patching")
    g = setup.graph
    n = round(0.1 * g.n_edges)
    masks = torch.stack([top_n(g, attribute(setup, m).scores, n) for m in ("eap", "eap-ig")] + [g.full(), g.empty()])
    values = mean_metric(setup, masks)
    faith = (values[:2] - values[3]) / (values[2] - values[3])
    assert float(faith[1]) >= float(faith[0]) > 0.5
