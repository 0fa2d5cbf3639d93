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


def measure_enforced(model, circuit: Circuit, seed: int = 1) -> dict[str, float]:
    """The compiled-induction measurements (`compiled.induction.measure`: copy loss ratio at spans
    8/16/32 after BOS, the designated heads' detector scores, node faithfulness of the loss drop
    between the copies and the share of it left with the circuit ablated), the textbook sweep with
    random prefixes (`mechanisms.textbook_induction`), and what the loss drop mixes in on a trained
    model. Its first copy is not at chance (a model of text is confidently wrong on random tokens)
    and mean-ablating the MLPs moves that loss, which the drop counts though it is not copying; so
    also, on the same rows and means:

    - ``copy_faithfulness``: node faithfulness of the second-copy loss alone (metric: -loss);
    - ``circuit_ablated_copy_ratio``: second/first-copy loss with the circuit's heads mean-ablated
      (1 or more: nothing copies without them);
    - ``edge_faithfulness`` / ``edge_complement``: the circuits engine on the induction task (16 prompts,
      logit difference, mean ablation) keeping only the circuit's edges / every edge but them.
    """
    import torch

    from mechscope.attention.icl import repeat_loss, repeat_loss_with_heads_ablated
    from mechscope.circuits import CircuitSetup, evaluate, truth_mask
    from mechscope.organisms.compiled.ablation import node_faithfulness, node_means
    from mechscope.organisms.compiled.induction import measure
    from mechscope.organisms.mechanisms import textbook_induction
    from mechscope.tasks import get_task
    from mechscope.tasks.induction import repeated_tokens

    with torch.no_grad():
        out = measure(model, circuit, seed=seed)
        sweep = textbook_induction(model)
        rep = repeated_tokens(model, 32, 20, seed)
        means = node_means(model, repeated_tokens(model, 32, 20, seed + 1).tokens)
        copy = node_faithfulness(model, lambda: -repeat_loss(model, rep).second_copy_loss, means, circuit.heads(),
                                 circuit.mlps())
        ablated = repeat_loss_with_heads_ablated(model, rep, circuit.heads())
        setup = CircuitSetup.from_task(model, get_task(model, circuit.task, n_prompts=16, seed=0), ablation="mean")
        kept = truth_mask(setup.graph, circuit.to_dict()).float()
        full, only, empty, complement = evaluate(setup, torch.stack([torch.ones_like(kept), kept,
                                                                     torch.zeros_like(kept), 1 - kept])).mean(1)
    for span, ratio, score in zip(sweep["spans"], sweep["ratio"], sweep["lag1_score"], strict=True):
        out[f"prefixed_loss_ratio_span{span}"] = ratio
        out[f"best_lag1_score_span{span}"] = score
    out["top_head_ablation_share"] = sweep["top_head"]["ablation_share"]
    out["copy_faithfulness"] = copy.faithfulness
    out["circuit_ablated_copy_ratio"] = ablated.second_copy_loss / ablated.first_copy_loss
    out["edge_faithfulness"] = float((only - empty) / (full - empty))
    out["edge_complement"] = float((complement - empty) / (full - empty))
    return out


def write_enforced_circuit(directory: str | Path, name: str, cfg: Enforcement) -> Path:
    """Write directory/circuit.json for the organism exported there, its metrics measured on those weights."""
    from mechscope.model.loading import load

    circuit = enforced_circuit(name, cfg)
    circuit.metrics = {k: round(v, 4) for k, v in measure_enforced(load(str(directory)), circuit).items()}
    return circuit.save(Path(directory) / "circuit.json")
