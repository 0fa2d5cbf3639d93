"""C05: token embeddings carry token-level features (related tokens cluster).

Experiment: linear probes of simple token properties (leading space, capitalised, digits, long)
from W_E rows, held-out accuracy; nearest neighbours by cosine.

Null: a shuffled-label control per property (the same probe refitted on shuffled labels, mean of 5),
stronger than a twin: it asks whether *these* embeddings carry the property, with the same tokens,
dimension and probe capacity.

Cost: a few ridge solves on W_E rows; no forward pass.
"""

from __future__ import annotations

from mechscope.claims.base import Budget, Measurement
from mechscope.geometry.token_embeddings import TokenEmbeddingConfig, token_embedding_geometry

ID = "C05"
NULL = ("shuffled-label control: each probe refitted on the same tokens with shuffled labels "
        "(mean of 5 shuffles)")
READS = ("probe_accuracy", "control_accuracy")
RULE = ("a property is decodable if its held-out probe accuracy is ≥ 0.65 and ≥ 0.10 above the shuffled-label "
        "control; supported if at least half of the probed properties (and at least two) are decodable; not "
        "supported if none is; otherwise inconclusive (also when fewer than two properties could be probed)")


def decodable(accuracy: float, control: float) -> bool:
    return accuracy >= 0.65 and accuracy - control >= 0.10


def verdict(metrics: dict, null: dict | None) -> str:
    pairs = list(zip(metrics["probe_accuracy"], metrics["control_accuracy"], strict=True))
    n = sum(decodable(a, c) for a, c in pairs)
    if len(pairs) < 2:
        return "inconclusive"
    if n >= 2 and 2 * n >= len(pairs):
        return "supported"
    if n == 0:
        return "not supported"
    return "inconclusive"


def measure(model, budget: Budget) -> Measurement:
    r = token_embedding_geometry(model, TokenEmbeddingConfig(seed=budget.seed))
    probes = {p.name: {"accuracy": p.accuracy, "control": p.control_accuracy, "n_positive": p.n_positive,
                       "skipped": p.skipped} for p in r.properties}
    n_decodable = sum(decodable(p.accuracy, p.control_accuracy) for p in r.probed)
    accuracy = [round(p.accuracy, 4) for p in r.probed]
    control = [round(p.control_accuracy, 4) for p in r.probed]
    shown = "; ".join(f"{q!r}: {', '.join(repr(t) for t in ns[:5])}" for q, ns in list(r.neighbours.items())[:3])
    return Measurement(
        metrics={"decodable_properties": n_decodable, "probed_properties": len(r.probed),
                 "probed": [p.name for p in r.probed], "probe_accuracy": accuracy, "control_accuracy": control,
                 "mean_probe_accuracy": round(sum(accuracy) / max(1, len(accuracy)), 4),
                 "mean_control_accuracy": round(sum(control) / max(1, len(control)), 4), "probes": probes,
                 "neighbours": r.neighbours, "n_tokens": r.n_tokens},
        key_metric="mean_probe_accuracy", null_key="mean_control_accuracy",
        evidence=(f"{n_decodable} of {len(r.probed)} token properties are linearly decodable from W_E above a "
                  f"shuffled-label control ("
                  + ", ".join(f"{p.name}: {p.accuracy:.2f} vs {p.control_accuracy:.2f}" for p in r.probed)
                  + f"). Nearest neighbours by cosine: {shown}."),
        method=(f"{r.n_tokens} ordinary tokens (special and byte tokens left out). Properties from each token's "
                "text: starts with a space, capitalised, all digits, longer than the median. For each, a ridge "
                "least-squares probe on standardised W_E rows, classes balanced, 70/30 split; the control refits "
                "it on shuffled labels (mean of 5 shuffles). Nearest neighbours by cosine similarity of W_E rows."),
        figures=[r.figure()],
    )
