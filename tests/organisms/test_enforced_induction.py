"""induction-enforced: a trained organism whose designated heads were trained to be the textbook lag-1
induction circuit while the rest learned the organism corpus freely (organisms/enforce.py).

The three tests of the compiled organisms on its shipped weights: it copies, ablating its circuit
destroys the copying, ablating everything outside the circuit keeps it (node faithfulness by mean
ablation, compiled/ablation.py). Thresholds sit below the values measured on the shipped weights
(circuit.json "metrics", re-measured here), with the margin stated at each.
"""

import json

import pytest
import torch

from mechscope.organisms import list_shipped
from mechscope.organisms.enforce import parse_head

NAME = "induction-enforced"
pytestmark = pytest.mark.skipif(NAME not in list_shipped(), reason=f"{NAME} is not shipped on this branch")


@pytest.fixture(scope="module")
def rep(model):
    from mechscope.tasks.induction import repeated_tokens

    return repeated_tokens(model, 16, 24, seed=7)


def test_copies_repeated_spans_after_random_prefixes_with_the_planted_head(model, circuit):
    """`mechanisms.textbook_induction` against the issue's targets for the default organism: second/first-copy
    loss <= 0.3 at spans 8, 16, 32 after random prefixes (measured 0.005 / 0.0002 / 0.0004), best lag-1
    score >= 0.3 (0.98 at each span), mean-ablating the top head undoes >= 30% of the drop (0.44)."""
    from mechscope.organisms.mechanisms import textbook_induction

    planted = next(node for node, role in circuit.extra["head_roles"].items() if role == "induction")
    with torch.no_grad():
        sweep = textbook_induction(model)
    assert max(sweep["ratio"]) <= 0.3, sweep["ratio"]
    assert min(sweep["lag1_score"]) >= 0.3, sweep["lag1_score"]
    assert sweep["lag1_head"] == [planted] * 3
    assert sweep["top_head"]["head"] == planted and sweep["top_head"]["lag"] == 1
    assert sweep["top_head"]["ablation_share"] >= 0.3


def test_ablating_the_circuit_destroys_copying_and_the_rest_does_not_matter(model, circuit, rep):
    """Node faithfulness by mean ablation (compiled/ablation.py) of two metrics: the loss drop between the
    copies (the compiled organisms' metric) and the second-copy loss alone. On a trained model the first
    copy is not at chance (~20 nats: a model of text is confidently wrong on random tokens) and
    mean-ablating the MLPs moves it, which the drop counts though it is not copying. Measured on the
    shipped weights at prompt seeds 7 / 3 / 11: drop faithfulness 0.950 / 0.992 / 0.959, second-copy
    faithfulness 0.9996 / 0.998 / 0.9997, drop left with the circuit ablated -0.87 / -1.03 / -0.24 nats
    of 19.4 / 20.0 / 19.3 (the second copy then worse than the first)."""
    from mechscope.attention.icl import repeat_loss
    from mechscope.organisms.compiled.ablation import node_faithfulness, node_means
    from mechscope.tasks.induction import repeated_tokens

    means = node_means(model, repeated_tokens(model, 16, 24, seed=8).tokens)
    drop = node_faithfulness(model, lambda: repeat_loss(model, rep).drop, means, circuit.heads(), circuit.mlps())
    copy = node_faithfulness(model, lambda: -repeat_loss(model, rep).second_copy_loss, means, circuit.heads(),
                             circuit.mlps())
    assert drop.full > 4.0                           # nats of loss drop between the copies
    assert drop.circuit_ablated < 0.1 * drop.full    # (ii) the circuit is necessary
    assert copy.faithfulness >= 0.95                 # (iii) and sufficient for the copy
    assert drop.faithfulness >= 0.9                  # and for the drop, first-copy shifts included


def test_edge_level_faithfulness_under_the_circuits_engine(circuit):
    """Recorded in circuit.json (re-measured below): the engine keeping only the circuit's edges
    (mean ablation, logit difference; 0.91 on the shipped weights, 0.90 / 0.91 / 0.95 at prompt seeds
    7 / 3 / 11) or every edge but them (-0.05; -0.04 to 0.06)."""
    assert circuit.metrics["edge_faithfulness"] >= 0.85
    assert circuit.metrics["edge_complement"] <= 0.1


def test_the_designated_heads_top_their_detectors(model, circuit, rep):
    from mechscope.attention.detectors import induction_scores, previous_token_scores

    roles = {role: parse_head(node) for node, role in circuit.extra["head_roles"].items()}
    with torch.no_grad():
        for role, scores in [("previous-token", previous_token_scores(model, rep.tokens)),
                             ("induction", induction_scores(model, rep))]:
            layer, head, score = scores.top(1)[0]
            assert (layer, head) == roles[role] and score > 0.5, (role, scores.top(2))


def test_recorded_metrics_are_remeasured_on_the_shipped_weights(model, circuit):
    from mechscope.organisms.enforced_circuit import measure_enforced

    fresh = measure_enforced(model, circuit)
    assert fresh.keys() == circuit.metrics.keys()
    for key, value in circuit.metrics.items():
        assert fresh[key] == pytest.approx(value, abs=2e-3), key


def test_shipped_files_come_from_the_preset_of_the_same_name():
    import dataclasses

    from mechscope.organisms import shipped_path
    from mechscope.organisms.compiled import load_circuit
    from mechscope.organisms.enforce import Enforcement
    from mechscope.organisms.presets import PRESETS
    from mechscope.organisms.train import _training_fields

    path = shipped_path(NAME)
    assert sum(p.stat().st_size for p in path.iterdir()) < 10e6
    card = json.loads((path / "training_card.json").read_text())
    assert _training_fields(card["preset"]) == _training_fields(PRESETS[NAME].to_dict())
    enforce = PRESETS[NAME].enforce
    assert load_circuit(NAME).heads() == sorted([parse_head(enforce.previous_head), parse_head(enforce.induction_head)])
    recorded = dataclasses.asdict(Enforcement(**load_circuit(NAME).extra["enforcement"]))   # later fields: defaults
    assert recorded == _training_fields(card["preset"])["enforce"]
