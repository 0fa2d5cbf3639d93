"""The circuit.json of an organism trained with an enforced circuit (organisms/enforce.py), and the
metrics that show the weights implement it, measured on the exported weights.

    circuit = enforced_circuit("induction-enforced", preset.enforce)
    circuit.metrics = measure_enforced(mechscope.load(final_dir), circuit)

The circuit is the textbook one: input -> previous-token head (q, k, v), previous-token head ->
induction head (k: K-composition), input -> induction head (q, v), induction head -> logits. MLPs and
the other heads are outside it; the strictness term trained them to be.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mechscope.organisms.compiled.circuit import Circuit
from mechscope.organisms.enforce import Enforcement


def enforced_circuit(name: str, cfg: Enforcement) -> Circuit:
    prev, ind = cfg.previous_head, cfg.induction_head
    nodes = {"input": "token embeddings (positions enter the queries and keys by RoPE)",
             prev: "previous-token head: trained to attend from every position to the one before it",
             ind: "induction head: trained to attend from r_i in the second copy to the token after the "
                  "earlier occurrence of r_i, and to decide the prediction by its output alone",
             "logits": "unembedding"}
    edges = {f"input->{prev}<q>": "query of the previous-token head", f"input->{prev}<k>": "its key",
             f"input->{prev}<v>": "the token it moves one position forward",
             f"input->{ind}<q>": "the current token",
             f"{prev}->{ind}<k>": "K-composition: the previous token keys the induction head",
             f"input->{ind}<v>": "the token to copy",
             f"{ind}->logits": "the copied token"}
    return Circuit(organism=name, task="induction", nodes=nodes, edges=edges,
                   extra={"head_roles": {prev: "previous-token", ind: "induction"},
                          "enforcement": dataclasses.asdict(cfg), "claims": ["C09", "C13"]})


def measure_enforced(model, circuit: Circuit) -> dict[str, float]:
    """The compiled-induction measurements (copy loss ratio at spans 8/16/32 after BOS, designated heads'
    detector scores, node faithfulness and the share left when the circuit is ablated) plus the
    textbook sweep with random prefixes (`mechanisms.textbook_induction`)."""
    import torch

    from mechscope.organisms.compiled.induction import measure
    from mechscope.organisms.mechanisms import textbook_induction

    with torch.no_grad():
        out = measure(model, circuit)
        sweep = textbook_induction(model)
    for span, ratio, score in zip(sweep["spans"], sweep["ratio"], sweep["lag1_score"], strict=True):
        out[f"prefixed_loss_ratio_span{span}"] = ratio
        out[f"best_lag1_score_span{span}"] = score
    out["top_head_ablation_share"] = sweep["top_head"]["ablation_share"]
    return out


def write_enforced_circuit(directory: str | Path, name: str, cfg: Enforcement) -> Path:
    """Write directory/circuit.json for the organism exported there, its metrics measured on those weights."""
    from mechscope.model.loading import load

    circuit = enforced_circuit(name, cfg)
    circuit.metrics = {k: round(v, 4) for k, v in measure_enforced(load(str(directory)), circuit).items()}
    return circuit.save(Path(directory) / "circuit.json")
