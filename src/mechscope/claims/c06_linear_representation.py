"""C06: concepts are linear directions that add (Park et al. 2023).

Experiment, on the built-in concepts (singular→plural, lower→capitalised, male→female; the pairs whose
words are single tokens for the model, ≥ 3 pairs each, ≥ 2 concepts, else not applicable):

1. Concept directions by difference of means in the unembedding, under the causal inner product
   (whitened by Cov(γ)^{-1/2}); the leave-one-out test: share of held-out pairs whose projection lies above
   the 95th percentile of random word pairs (`loo_share_causal`, mean over concepts), and the share of
   held-out pairs the direction orders right (`probe_accuracy`).
2. Steering, split in halves so the measured pairs never built the direction: the dual direction
   Cov(γ)⁻¹ γ̄_W from the even pairs is added at the last block's output (last position, α in units of the
   stream's norm) and the log-odds of the odd pairs read against α (`steer_slope`, mean over concepts);
   `steer_selectivity` = mean over concepts of max |off-target slope| / |slope|.
3. Additivity error of steering by the first two concepts together (α = β = 0.5).

Null: the re-initialised twin; its random unembedding has no concepts, so held-out pairs sit among random
pairs and the split-half steering slope is ~0.

Cost: one eigendecomposition of Cov(W_U), ~30 forward passes of 8 short prompts per concept (model and twin).
"""

from __future__ import annotations

import numpy as np

from mechscope.claims.base import Budget, Measurement
from mechscope.errors import NotApplicableError
from mechscope.geometry.concepts import linear_concepts, word_vectors
from mechscope.geometry.steering import additivity_error, steer, steering_direction
from mechscope.geometry.word_pairs import ConceptPairs, default_concepts

ID = "C06"
NULL = "twin"
READS = ("loo_share_causal", "steer_slope", "steer_selectivity", "additivity_error")
NULL_READS = ("loo_share_causal", "steer_slope")

MIN_LOO, LOO_MARGIN, MIN_SLOPE, MAX_SELECTIVITY, MAX_ADDITIVITY = 0.5, 0.3, 1.0, 0.5, 0.3
RULE = (f"supported if the held-out pairs of the concepts lie above the random-pair 95th percentile at a mean "
        f"share ≥ {MIN_LOO} and ≥ {LOO_MARGIN} above the twin's, split-half steering raises the held-out "
        f"log-odds by ≥ {MIN_SLOPE} per unit α more than in the twin, with off-target/target slope ratio "
        f"≤ {MAX_SELECTIVITY} and additivity error ≤ {MAX_ADDITIVITY}; not supported if the leave-one-out share "
        "is within 0.1 of the twin's or the steering slope does not exceed the twin's; otherwise inconclusive")


def verdict(metrics: dict, null: dict | None) -> str:
    loo, slope = metrics["loo_share_causal"], metrics["steer_slope"]
    if null is None:
        return "inconclusive"
    if loo - null["loo_share_causal"] <= 0.1 or slope <= null["steer_slope"]:
        return "not supported"
    if (loo >= MIN_LOO and loo - null["loo_share_causal"] >= LOO_MARGIN
            and slope - null["steer_slope"] >= MIN_SLOPE and metrics["steer_selectivity"] <= MAX_SELECTIVITY
            and metrics["additivity_error"] <= MAX_ADDITIVITY):
        return "supported"
    return "inconclusive"


def halves(c: ConceptPairs) -> tuple[ConceptPairs, ConceptPairs]:
    """(even pairs, odd pairs) of a concept."""
    def part(s):
        return ConceptPairs(c.name, c.base_words[s], c.target_words[s], c.base_ids[s], c.target_ids[s])
    return part(slice(0, None, 2)), part(slice(1, None, 2))


def distinguished(model, concepts: dict[str, ConceptPairs]) -> dict[str, ConceptPairs]:
    """The concepts whose pair words the unembedding tells apart (a non-zero mean difference of W_U rows).

    Raises NotApplicableError when fewer than two remain: Park's unembedding-space concepts are undefined
    (e.g. a compiled model whose unembedding reads only its answers)."""
    gamma = word_vectors(model, "unembedding")
    kept = {k: c for k, c in concepts.items()
            if float((gamma[c.target_ids] - gamma[c.base_ids]).mean(0).norm()) > 0}
    if len(kept) < 2:
        raise NotApplicableError(
            f"the unembedding tells the pair words apart for {len(kept)} of the {len(concepts)} concepts with "
            "single-token pairs; unembedding-space concept directions need two. Residual-space directions remain "
            "available: mechscope geometry concept --space blocks.0.hook_resid_pre")
    return kept


def measure(model, budget: Budget) -> Measurement:
    concepts = distinguished(model, default_concepts(model))
    lin = linear_concepts(model, concepts, seed=budget.seed)
    runs = []
    for name, c in concepts.items():
        build, held = halves(c)
        others = {k: v for k, v in concepts.items() if k != name}
        runs.append(steer(model, steering_direction(model, build, "causal"), held, off_target=others,
                          kind="causal"))
    names = list(concepts)
    add = additivity_error(model, steering_direction(model, concepts[names[0]]),
                           steering_direction(model, concepts[names[1]]))
    loo = float(np.mean([s.share_above for s in lin.causal]))
    metrics = {
        "loo_share_causal": loo,
        "loo_share_euclidean": float(np.mean([s.share_above for s in lin.euclidean])),
        "probe_accuracy": float(np.mean([s.loo_accuracy for s in lin.causal])),
        "steer_slope": float(np.mean([r.slope for r in runs])),
        "steer_selectivity": float(np.mean([r.selectivity for r in runs])),
        "additivity_error": add,
        "per_concept": {r.concept: {"n_pairs": len(concepts[r.concept]), "slope": r.slope,
                                    "off_slopes": r.off_slopes, "loo_share": s.share_above}
                        for r, s in zip(runs, lin.causal, strict=True)},
        "max_abs_cos_causal": float(np.max(np.abs(lin.cos_causal - np.eye(len(names))))),
        "max_abs_cos_euclidean": float(np.max(np.abs(lin.cos_euclidean - np.eye(len(names))))),
    }
    return Measurement(
        metrics=metrics, key_metric="loo_share_causal",
        evidence=(f"Held-out pairs of {len(names)} concepts lie above the 95th percentile of random word pairs "
                  f"{100 * loo:.0f}% of the time under the causal inner product. Adding the dual direction of half "
                  f"the pairs at the last block moves the other half's log-odds by {metrics['steer_slope']:.2f} "
                  f"per unit α (off-target/target {metrics['steer_selectivity']:.2f}); steering two concepts at "
                  f"once departs from the sum of the two by {100 * add:.0f}%."),
        method=("Difference-of-means directions of counterfactual single-token word pairs in W_U, whitened by "
                "Cov(γ)^{-1/2} (Park et al.); leave-one-out projections against 2000 random word pairs; "
                "split-half steering with Cov(γ)⁻¹γ̄ at the last block's output on 8 short prompts, α ∈ [-1, 1] × "
                "the stream's mean norm; additivity error of the centred logit change at α = β = 0.5."),
        figures=[lin.figure(), runs[0].figure()])
