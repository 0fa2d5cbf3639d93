"""C15's gate classifier on the compiled-boolean organism (Contract B ground truth): reading the
planted feature directions at the MLP input and the planted gate units of block 0, all 16 gates are
classified with their true type, with the true parents and with parents found by co-activation."""

import pytest
import torch

import mechscope
from mechscope.graphs.gates import classify_gates


@pytest.fixture(scope="module")
def boolean_organism():
    from mechscope.organisms.compiled import load_circuit
    from mechscope.organisms.compiled.boolean import random_feature_tokens

    model = mechscope.load("organism:compiled-boolean")
    circuit = load_circuit("compiled-boolean")
    tokens = random_feature_tokens(model, n_seq=32, length=16, seed=3)
    _, cache = model.run_with_cache(tokens, names=["blocks.0.ln2.hook_normalized", "blocks.0.mlp.hook_post"])
    return model, circuit, cache


def test_sixteen_of_sixteen_gates_from_the_true_features(boolean_organism):
    model, circuit, cache = boolean_organism
    units = circuit.mlp_units["m0"]
    directions = torch.tensor([circuit.extra["feature_directions"][f"f{f}"] for f in range(6)])   # [6 d_model]
    mlp_in = cache["blocks.0.ln2.hook_normalized"][:, 1:].reshape(-1, model.cfg.d_model)          # BOS dropped
    features_on = (mlp_in @ directions.T) > 0.5
    gate_units = [u["units"][0] for u in units]
    gates_on = cache["blocks.0.mlp.hook_post"][:, 1:].reshape(-1, model.cfg.d_mlp)[:, gate_units] > 0
    true_parents = torch.tensor([[int(p[1:]) for p in u["parents"]] for u in units])
    kinds = [u["gate"] for u in units]
    assert classify_gates(gates_on, features_on, true_parents).kinds == kinds
    found = classify_gates(gates_on, features_on)
    assert found.kinds == kinds
    assert [sorted(p) for p in found.parents] == [sorted(p) for p in true_parents.tolist()]
