"""The geometry methods recover what compiled-geometry plants: its day/month circles (plane, order, the
answer moving with the circle) and its plural / capitalised directions (direction, steering, additivity)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mechscope
from mechscope.geometry.circle import circle_intervention, cycle_activations, cycle_prompts, task_accuracy
from mechscope.geometry.circle_probe import fit_circle
from mechscope.geometry.concepts import linear_concepts
from mechscope.geometry.steering import additivity_error, steer
from mechscope.geometry.word_pairs import ConceptPairs, default_concepts

NAME = "compiled-geometry"
HOOK = "blocks.0.hook_resid_pre"


@pytest.fixture(scope="module")
def organism():
    from mechscope.organisms import shipped_path
    from mechscope.organisms.compiled import load_circuit

    try:
        shipped_path(NAME)
    except Exception:   # noqa: BLE001 - the organism ships with the organisms work
        pytest.skip(f"organism {NAME} is not shipped on this branch")
    return mechscope.load(f"organism:{NAME}"), load_circuit(NAME)


@pytest.mark.parametrize("kind,key", [("days", "day"), ("months", "month")])
def test_the_planted_circle_comes_back_in_order_and_moving_it_moves_the_answer(organism, kind, key):
    model, circuit = organism
    cp = cycle_prompts(model, kind)
    assert task_accuracy(model, cp) == 1.0
    acts = cycle_activations(model, cp, [HOOK])[HOOK]
    fit = fit_circle(acts, cp.starts, cp.period)
    assert fit.r2 > 0.999 and fit.heldout_r2 > 0.999 and fit.order_exact
    recorded = np.array(circuit.extra["circles"][key]["subspace"])                 # [2 d_model]
    assert np.linalg.svd(fit.plane_basis() @ recorded.T, compute_uv=False).min() > 0.999
    accuracy, _ = circle_intervention(model, cp, HOOK, acts, fit)
    assert accuracy == 1.0


def test_the_planted_concept_directions_come_back_and_steer_their_readouts(organism):
    model, circuit = organism
    concepts = default_concepts(model)
    r = linear_concepts(model, concepts, space=HOOK)
    planted = {"singular→plural": "plural", "lower→capitalised": "capitalised"}
    dirs = {}
    for name, key in planted.items():
        want = np.array(circuit.extra["concepts"][key]["direction"])
        got = r.directions[r.names.index(name)]
        assert got @ want / np.linalg.norm(want) > 0.999
        dirs[name] = torch.tensor(got, dtype=torch.float32)
    assert abs(r.cos_euclidean[0, 1]) < 1e-3                                        # planted orthogonal

    def readout(base, target):   # the organism reads plural as run vs runs and capitalised as ! vs .
        ids = [model.to_single_token(w) for w in (base, target)]
        return ConceptPairs(f"{base}→{target}", [base], [target], [ids[0]], [ids[1]])

    plural, capital = readout("runs", "run"), readout(".", "!")
    s = steer(model, dirs["singular→plural"], plural, hook=HOOK, off_target={"capital": capital},
              prompts=["the cat", "the dog"], alphas=(-0.1, 0.0, 0.1))
    assert s.slope > 1.0 and abs(s.off_slopes["capital"]) < 0.05 * s.slope
    error = additivity_error(model, dirs["singular→plural"], dirs["lower→capitalised"], hook=HOOK,
                             prompts=["the cat", "the dog"], alpha=0.05, beta=0.05)
    assert error < 0.05
