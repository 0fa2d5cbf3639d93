"""What a trained organism actually learned, measured on its shipped weights: `mechanisms.json`.

The corpus plants behaviours; which heads carry them, and whether each behaviour reached its target,
is measured, not assumed. `measure_mechanisms` records, next to the world (ground_truth.json):

- ``heads``: the top heads of each detector in `mechscope.attention.head_report` (previous-token,
  duplicate-token, induction, look-back and lagged induction with their lag, copying), with scores;
- ``repeat``: first- and second-copy loss on [BOS] r r sequences;
- ``induction``: `attention.induction_sweep` on repeated random spans of 8, 16 and 32 tokens after
  random prefixes: second/first-copy loss per span, the best lag-1 (textbook) induction score per
  span, and the share of the loss drop that mean-ablating the top induction head undoes;
- ``name_movers``: on IOI prompts with held-out names, the top name-mover heads (attention END -> IO
  x direct logit effect on IO - S, `attention.name_mover_scores`) and the top heads by that direct
  effect alone, with their attention from END to IO and to S;
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
INDUCTION_SPANS = (8, 16, 32)


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


def textbook_induction(model, spans: tuple[int, ...] = INDUCTION_SPANS) -> dict[str, Any]:
    """Copying of repeated random spans after random prefixes and the heads that carry it (fixed seed).

    ``ratio``: second/first-copy loss per span; ``lag1_score``: the best head's attention from the
    second copy to the token after the earlier occurrence, per span; ``top_head``: the head the sweep
    ranks first at the span with the largest drop, its lag and the share of that drop that
    mean-ablating it undoes.
    """
    from mechscope.attention.span_sweep import induction_sweep

    sweep = induction_sweep(model, spans=spans, n_rows=16, n_candidates=3, seed=0)
    lag1 = sweep.induction_scores(1).flatten(1)                            # [spans L*H]
    (layer, head) = sweep.candidates[0]
    return {"spans": sweep.spans, "ratio": [round(r, 4) for r in sweep.ratio],
            "lag1_score": [round(float(v), 4) for v in lag1.max(1).values],
            "lag1_head": [f"a{int(i) // model.cfg.n_heads}.h{int(i) % model.cfg.n_heads}" for i in lag1.argmax(1)],
            "best_span": sweep.best_span,
            "top_head": {"head": f"a{layer}.h{head}", "lag": sweep.candidate_lags[0],
                         "ablation_share": round(sweep.ablation_share[0], 4)},
            "top_heads_joint_ablation_share": round(sweep.joint_ablation_share, 4)}


def name_movers(model, task=None, top: int = TOP_HEADS) -> dict[str, list[dict[str, Any]]]:
    """The heads that write the IOI answer, on `task` or 64 prompts of `tasks.ioi.ioi_task` (held-out names
    on an organism, seed 0): ``by_score``, the top heads by name-mover score (attention END -> IO x direct
    logit effect on IO - S, `attention.name_mover_scores`), and ``by_direct_effect``, the top heads by that
    logit effect alone, with where they attend from END. A head can write the answer without attending to IO:
    tiny-llama-base's IO - S is written mostly by a3.h3, which attends to S2 (0.96) and lowers S's logit, so its
    best name-mover score is 0.017; in tiny-llama, its continuation with a name mover planted, a3.h2 leads both
    rankings (score 1.49)."""
    from mechscope.attention import name_mover_scores
    from mechscope.attention.detectors import HeadScores
    from mechscope.tasks.ioi import ioi_task

    scores = name_mover_scores(model, task if task is not None else ioi_task(model, n_prompts=64, seed=0))

    def row(layer: int, head: int) -> dict[str, Any]:
        return {"head": f"a{layer}.h{head}", "score": round(float(scores.score[layer, head]), 4),
                "attention_to_io": round(float(scores.attention_to_io[layer, head]), 4),
                "attention_to_s": round(float(scores.attention_to_s[layer, head]), 4),
                "logit_effect": round(float(scores.logit_effect[layer, head]), 4)}

    by_effect = HeadScores("direct effect", scores.logit_effect, "direct logit effect (IO - S)")
    return {"by_score": [row(layer, head) for layer, head, _ in scores.as_head_scores().top(top)],
            "by_direct_effect": [row(layer, head) for layer, head, _ in by_effect.top(top)]}


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
        model = load(str(path))
        out = {"format": FORMAT, "organism": path.name, "families": gt.families} | head_mechanisms(model)
        out["induction"] = textbook_induction(model)
        if gt.plants("ioi"):
            out["name_movers"] = name_movers(model)
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
