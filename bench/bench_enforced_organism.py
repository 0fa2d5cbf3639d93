"""The enforced organism (induction-enforced) against its own circuit.json.

Measured on the shipped weights, one thread:

- the circuit.json metrics re-measured (`organisms.enforced_circuit.measure_enforced`);
- held-out English loss and training time from its training card;
- ROC AUC of EAP-IG, exact edge patching and ACDC edge scores against the planted edges
  (`circuits.truth`), on the induction task (16 prompts) for several prompt seeds, under mean
  ablation and under patching (the task's corrupt prompt changes the copied token, so under patching
  the K-composition edge carries no difference, see tests/circuits/test_organism_truth.py).

    python bench/bench_enforced_organism.py [--seeds 0 1 2]   -> bench/results/enforced_organism.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import write  # noqa: E402

NAME = "induction-enforced"


def discovery(model, truth: dict, seed: int, ablation: str) -> dict:
    from mechscope.circuits import CircuitSetup, acdc, attribute, roc_auc, truth_mask
    from mechscope.tasks import get_task

    setup = CircuitSetup.from_task(model, get_task(model, "induction", n_prompts=16, seed=seed), ablation=ablation)
    mask = truth_mask(setup.graph, truth)
    out = {}
    for method in ("eap-ig", "exact"):
        scores = attribute(setup, method)
        out[f"{method}_roc_auc"] = roc_auc(setup.graph, scores.scores, mask)
        out[f"{method}_top"] = scores.top(10)
    found = acdc(setup, 0.1, objective="kl")
    out["acdc_roc_auc"] = roc_auc(setup.graph, found.scores.scores, mask)
    out["acdc_edges"] = sorted(setup.graph.edges_of(found.mask))
    out["planted_edges_merged"] = sorted(setup.graph.edges_of(mask))
    return out


def main() -> None:
    import mechscope
    from mechscope.organisms import shipped_path
    from mechscope.organisms.compiled import load_circuit
    from mechscope.organisms.enforced_circuit import measure_enforced

    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = mechscope.load(f"organism:{NAME}")
    circuit = load_circuit(NAME)
    card = json.loads((shipped_path(NAME) / "training_card.json").read_text())
    t0 = time.perf_counter()
    with torch.no_grad():
        metrics = measure_enforced(model, circuit)
    payload = {"organism": NAME, "threads": 1, "metrics": metrics, "measure_seconds": time.perf_counter() - t0,
               "training": {"train_seconds": card["train_seconds"], "steps": card["steps"],
                            "threads": card["threads"], "final_metrics": card["final_metrics"]},
               "discovery": {}}
    truth = circuit.to_dict()
    for ablation in ("mean", "patching"):
        runs = {seed: discovery(model, truth, seed, ablation) for seed in args.seeds}
        summary = {key: [runs[s][key] for s in args.seeds] for key in ("eap-ig_roc_auc", "exact_roc_auc", "acdc_roc_auc")}
        payload["discovery"][ablation] = {"by_seed": runs, "roc_auc": summary}
        print(ablation, json.dumps(summary))
    print(json.dumps(metrics))
    write("enforced_organism", payload)


if __name__ == "__main__":
    main()
