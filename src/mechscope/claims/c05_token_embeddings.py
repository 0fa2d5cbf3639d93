"""C05: token embeddings carry token-level features (related tokens cluster)."""

from __future__ import annotations

from mechscope.claims.base import Budget, ClaimResult
from mechscope.geometry.token_embeddings import (
    TokenEmbeddingConfig,
    TokenEmbeddingResult,
    token_embedding_geometry,
)

ID = "C05"
SLUG = "token-embeddings"
TITLE = "Token embeddings carry token-level features (related tokens cluster)"
REFERENCE = "—"
RULE = ("a property is decodable if its held-out probe accuracy is ≥ 0.65 and ≥ 0.10 above the shuffled-label "
        "control; supported if at least half of the probed properties (and at least two) are decodable; not "
        "supported if none is; otherwise inconclusive (also when fewer than two properties could be probed)")


def decodable(p) -> bool:
    return p.accuracy >= 0.65 and p.accuracy - p.control_accuracy >= 0.10


def rule(r: TokenEmbeddingResult) -> str:
    probed = r.probed
    n = sum(decodable(p) for p in probed)
    if len(probed) < 2:
        return "inconclusive"
    if n >= 2 and 2 * n >= len(probed):
        return "supported"
    if n == 0:
        return "not supported"
    return "inconclusive"


def run(model, budget: Budget) -> ClaimResult:
    r = token_embedding_geometry(model, TokenEmbeddingConfig(seed=budget.seed))
    probes = {p.name: {"accuracy": p.accuracy, "control": p.control_accuracy, "n_positive": p.n_positive,
                       "skipped": p.skipped} for p in r.properties}
    n_decodable = sum(decodable(p) for p in r.probed)
    shown = "; ".join(f"{q!r}: {', '.join(repr(t) for t in ns[:5])}" for q, ns in list(r.neighbours.items())[:3])
    return ClaimResult(
        ID, SLUG, TITLE, rule(r),
        metrics={"decodable_properties": n_decodable, "probed_properties": len(r.probed), "probes": probes,
                 "neighbours": r.neighbours, "n_tokens": r.n_tokens},
        key_metric="decodable_properties",
        evidence=(f"{n_decodable} of {len(r.probed)} token properties are linearly decodable from W_E above a "
                  f"shuffled-label control ("
                  + ", ".join(f"{p.name}: {p.accuracy:.2f} vs {p.control_accuracy:.2f}" for p in r.probed)
                  + f"). Nearest neighbours by cosine: {shown}."),
        method=(f"{r.n_tokens} ordinary tokens (special and byte tokens left out). Properties from each token's "
                "text: starts with a space, capitalised, all digits, longer than the median. For each, a ridge "
                "least-squares probe on standardised W_E rows, classes balanced, 70/30 split; the control refits "
                "it on shuffled labels (mean of 5 shuffles). Nearest neighbours by cosine similarity of W_E rows."),
        rule=RULE, reference=REFERENCE, figures=[r.figure()],
    )
