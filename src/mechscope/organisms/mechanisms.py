"""What a trained organism actually learned, measured on its shipped weights: `mechanisms.json`.

The corpus plants behaviours; which heads carry them, and whether each behaviour reached its target,
is measured, not assumed. `measure_mechanisms` records, next to the world (ground_truth.json):

- ``heads``: the top heads of each detector in `mechscope.attention.head_report` (previous-token,
  duplicate-token, induction, look-back and lagged induction with their lag, copying), with scores;
- ``repeat``: first- and second-copy loss on [BOS] r r sequences;
- ``tasks``: `organisms.evaluate.evaluate` on held-out prompts (IOI, induction ratio, facts, days, docstring);
- ``claims``: for each claim whose behaviour the corpus targets, the metric, its target and whether
  the shipped weights meet it (`CLAIM_TARGETS`).

Compiled organisms carry `circuit.json` instead (organisms/compiled/).

    from mechscope.organisms.mechanisms import write_mechanisms
    write_mechanisms("tiny-gpt2")       # re-measure on the shipped weights and rewrite the file
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FORMAT = "mechscope-mechanisms/1"
FILENAME = "mechanisms.json"
# claim -> (metric of organisms.evaluate, direction, target): the behaviour a claim needs planted
CLAIM_TARGETS = {
    "C09": ("induction_loss_ratio", "<=", 0.3),
    "C10": ("ioi_accuracy", ">=", 0.9),
    "C14": ("fact_recall", ">=", 0.9),
    "C07": ("day_accuracy", ">=", 0.8),
    "C11": ("docstring_accuracy", ">=", 0.8),
}
TOP_HEADS = 3


def meets(value: float, direction: str, target: float) -> bool:
    return value >= target if direction == ">=" else value <= target


def head_mechanisms(model, top: int = TOP_HEADS) -> dict[str, Any]:
    """Top heads per detector and the repeat loss of a HookedModel (fixed seeds)."""
    from mechscope.attention import head_report

    report = head_report(model, n_sequences=8, half_len=20)
    heads = {}
    for name, scores in report.scores.items():
        rows = []
        for layer, head, score in scores.top(top):
            row: dict[str, Any] = {"head": f"a{layer}.h{head}", "score": round(score, 4)}
            if scores.lags is not None:
                row["lag"] = int(scores.lags[layer, head])
            rows.append(row)
        heads[name] = rows
    return {"heads": heads, "repeat": {"first_copy_loss": round(report.repeat.first_copy_loss, 4),
                                       "second_copy_loss": round(report.repeat.second_copy_loss, 4)}}


def measure_mechanisms(name_or_path: str | Path, n_prompts: int = 200) -> dict[str, Any]:
    """Measure a trained organism (shipped name or directory): heads, repeat loss, tasks, claims."""
    import torch

    from mechscope.model.loading import load
    from mechscope.organisms.evaluate import evaluate
    from mechscope.organisms.loading import load_organism, organism_dir

    path = organism_dir(name_or_path)
    hf, tokenizer, gt = load_organism(path)
    with torch.no_grad():
        tasks = {k: round(v, 4) for k, v in evaluate(hf, tokenizer, gt, None, n_prompts=n_prompts).items()}
        out = {"format": FORMAT, "organism": path.name, "families": gt.families} | head_mechanisms(load(str(path)))
    out["tasks"] = tasks
    out["claims"] = {claim: {"metric": metric, "target": f"{direction} {target}", "value": tasks[metric],
                             "planted": meets(tasks[metric], direction, target)}
                     for claim, (metric, direction, target) in CLAIM_TARGETS.items() if metric in tasks}
    return out


def load_mechanisms(name_or_path: str | Path) -> dict[str, Any]:
    from mechscope.organisms.shipped import organism_file

    path = organism_file(name_or_path, FILENAME, "measure it with `mechanisms.measure_mechanisms` and write it")
    return json.loads(path.read_text(encoding="utf-8"))


def write_mechanisms(name_or_path: str | Path, n_prompts: int = 200) -> Path:
    from mechscope.io import write_json_atomic
    from mechscope.organisms.loading import organism_dir

    return write_json_atomic(organism_dir(name_or_path) / FILENAME, measure_mechanisms(name_or_path, n_prompts))
