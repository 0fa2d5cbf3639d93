"""compiled-boolean: each unit's truth table, the gates readable along their recorded directions,
necessity (per gate) and faithfulness of the gate units."""

import pytest
import torch

NAME = "compiled-boolean"


@pytest.fixture(scope="module")
def every_token(model):
    """[64 2]: BOS then each feature token once."""
    from mechscope.organisms.compiled.boolean import feature_tokens

    ids = torch.tensor(model.tokenizer.convert_tokens_to_ids(feature_tokens()))
    return torch.stack([torch.zeros_like(ids), ids], 1)


def _bits(model, tokens) -> torch.Tensor:
    """[n 6] the feature bits spelled in the token strings (independent of the weights)."""
    words = model.tokenizer.convert_ids_to_tokens(tokens[:, 1].tolist())
    return torch.tensor([[int(c) for c in w[1:]] for w in words], dtype=torch.bool)


def test_sixteen_gates_eight_and_eight_or(circuit):
    units = circuit.mlp_units["m0"]
    assert len(units) == 16 and sorted(u["gate"] for u in units).count("AND") == 8
    assert len({u for entry in units for u in entry["units"]}) == 16


def test_each_unit_has_its_gate_truth_table_and_writes_it_along_its_direction(model, circuit, every_token):
    with torch.no_grad():
        _, cache = model.run_with_cache(every_token, names=["blocks.0.mlp.hook_post", "blocks.0.hook_resid_post"])
    post, resid = cache["blocks.0.mlp.hook_post"][:, 1], cache["blocks.0.hook_resid_post"][:, 1].double()
    bits = _bits(model, every_token)
    for unit in circuit.mlp_units["m0"]:
        a, b = (bits[:, int(p[1:])] for p in unit["parents"])
        truth = (a & b) if unit["gate"] == "AND" else (a | b)
        active = post[:, unit["units"][0]] > 3
        assert torch.equal(active, truth), unit["role"]
        readout = resid @ torch.tensor(circuit.extra["gate_directions"][unit["output"]], dtype=torch.float64)
        assert torch.allclose(readout, truth.double(), atol=1e-2), unit["role"]
    for f in range(6):   # the input features sit along their recorded directions too
        direction = torch.tensor(circuit.extra["feature_directions"][f"f{f}"], dtype=torch.float64)
        embed = model.W_E[every_token[:, 1]].double() + model.W_pos[1].double()
        assert torch.allclose(embed @ direction, bits[:, f].double(), atol=1e-4)


def test_gate_logits_are_right_and_ablating_one_unit_breaks_only_its_gate(model, circuit, every_token):
    from mechscope.model.interventions import mean_ablate
    from mechscope.organisms.compiled.ablation import node_means
    from mechscope.organisms.compiled.boolean import THRESHOLD, gate_truth, random_feature_tokens

    readout = model.tokenizer.convert_tokens_to_ids([u["readout_token"] for u in circuit.mlp_units["m0"]])
    truth = gate_truth(model, circuit, every_token)[:, 1]
    with torch.no_grad():
        assert torch.equal(model(every_token)[:, 1, readout] > THRESHOLD, truth)
    means = node_means(model, random_feature_tokens(model, seed=5))["blocks.0.mlp.hook_post"][1:].mean(0)  # [d_mlp]
    for k, unit in enumerate(circuit.mlp_units["m0"]):
        with torch.no_grad(), model.hooks(fwd={"blocks.0.mlp.hook_post": mean_ablate(means, units=unit["units"])}):
            right = (model(every_token)[:, 1, readout] > THRESHOLD) == truth
        assert right[:, k].float().mean() <= 0.8, unit["role"]          # the gate falls to a constant guess
        others = [j for j in range(16) if j != k]
        assert right[:, others].all(), unit["role"]


def test_gate_units_are_necessary_and_sufficient(model, circuit):
    from mechscope.organisms.compiled.ablation import node_means, unit_faithfulness
    from mechscope.organisms.compiled.boolean import gate_accuracy, random_feature_tokens

    tokens = random_feature_tokens(model, seed=9)
    means = node_means(model, random_feature_tokens(model, seed=10))
    units = [u for entry in circuit.mlp_units["m0"] for u in entry["units"]]
    faith = unit_faithfulness(model, lambda: gate_accuracy(model, circuit, tokens), means, {0: units})
    assert faith.full == 1.0
    assert faith.faithfulness >= 0.95
    assert faith.circuit_ablated <= 0.8 and faith.ablated_fraction < 0.05
