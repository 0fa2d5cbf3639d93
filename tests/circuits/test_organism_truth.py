"""Recovery of the planted circuit of the compiled organisms (circuit.json, CONTRACTS.md B).

Mean ablation, because the induction task's patching contrast (r_n replaced in the first copy)
changes only the value the induction head copies, not its key: under patching the K-composition
edge a0.h1 -> a1 carries no difference and no method can see it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import mechscope
from mechscope.circuits import CircuitSetup, acdc, attribute, load_circuit_json, roc_auc, truth_mask
from mechscope.tasks import get_task

WEIGHTS = Path(mechscope.__file__).parent / "organisms" / "weights"


def _organism(name: str, ablation: str, qkv: bool = False):
    """(CircuitSetup on the organism's own task, truth mask) or a skip when it is not shipped."""
    path = WEIGHTS / name / "circuit.json"
    if not path.exists():
        pytest.skip(f"{name} is not shipped on this branch")
    truth = load_circuit_json(path)
    model = mechscope.load(f"organism:{name}")
    setup = CircuitSetup.from_task(model, get_task(model, truth["task"], n_prompts=16, seed=0), ablation=ablation,
                                   qkv=qkv)
    return setup, truth_mask(setup.graph, truth)


@pytest.fixture(scope="module")
def compiled_induction():
    return _organism("compiled-induction", "mean")


@pytest.mark.parametrize("method", ["eap-ig", "exact"])
def test_attribution_roc_auc_on_compiled_induction(compiled_induction, method):
    setup, truth = compiled_induction
    assert roc_auc(setup.graph, attribute(setup, method).scores, truth) >= 0.95


@pytest.mark.parametrize("objective,tau", [("kl", 0.1), ("metric", 0.1)])
def test_acdc_returns_the_planted_edges(compiled_induction, objective, tau):
    setup, truth = compiled_induction
    found = acdc(setup, tau, objective=objective)
    assert sorted(setup.graph.edges_of(found.mask)) == sorted(setup.graph.edges_of(truth))
    assert roc_auc(setup.graph, found.scores.scores, truth) >= 0.95


def test_eap_ig_finds_the_planted_qkv_edges_of_compiled_induction():
    """At the level circuit.json is written in: 8 planted edges among 110 split edges. Measured
    (16 prompts, mean ablation): ROC AUC EAP-IG 1.0, exact 0.973, EAP 0.912; ACDC (KL, tau 0.1)
    keeps 7 of the 8, all planted (it drops input -> a1.h0<k>, the BOS sink key)."""
    setup, truth = _organism("compiled-induction", "mean", qkv=True)
    assert int(truth.sum()) == 8 and setup.graph.n_edges == 110
    assert roc_auc(setup.graph, attribute(setup, "eap-ig").scores, truth) >= 0.95
    found = acdc(setup, 0.1, objective="kl")
    assert set(setup.graph.edges_of(found.mask)) <= set(setup.graph.edges_of(truth)) and found.n_edges >= 7


@pytest.fixture(scope="module")
def compiled_ioi():
    return _organism("compiled-ioi", "patching")


def test_compiled_ioi_eap_ig_and_acdc(compiled_ioi):
    """Patching with the task's ABC prompts. ACDC keeps every planted edge but input -> a1, whose
    effect under this contrast is exactly zero (exact patching: 0.0), so no method can see it."""
    setup, truth = compiled_ioi
    g = setup.graph
    assert roc_auc(g, attribute(setup, "eap-ig").scores, truth) >= 0.95
    found = acdc(setup, 0.1, objective="kl")
    assert roc_auc(g, found.scores.scores, truth) >= 0.95
    assert set(g.edges_of(found.mask)) <= set(g.edges_of(truth)) and found.n_edges >= 6


@pytest.fixture(scope="module")
def induction_enforced():
    return _organism("induction-enforced", "mean")


def test_eap_ig_and_acdc_on_the_trained_organism_with_an_enforced_circuit(induction_enforced):
    """A trained model, not hand-written weights: the planted edges are what its training enforced
    (organisms/enforce.py). Measured on the shipped weights (bench/results/enforced_organism.json,
    prompt seeds 0-2, mean ablation): EAP-IG ROC AUC 0.98 / 0.98 / 0.97, ACDC (KL, tau 0.1) 1.0 at
    each seed, keeping exactly the four merged planted edges. Under patching the K-composition edge
    carries no difference (module docstring) and EAP-IG falls to 0.85-0.91."""
    setup, truth = induction_enforced
    g = setup.graph
    assert roc_auc(g, attribute(setup, "eap-ig").scores, truth) >= 0.95
    found = acdc(setup, 0.1, objective="kl")
    assert roc_auc(g, found.scores.scores, truth) >= 0.95
