"""C08: sparse features are stored in superposition (more features than dimensions).

The claim is about toy models, so this experiment trains toy models x' = ReLU(WᵀWx + b) whatever
language model the report runs on; the model argument is not used (NULL = "none": the report shows
it apart from the claims about the model, outside their tally).

Null: the dense setting (feature probability 1) of the same sweep: with dense features the toy
stores about one feature per dimension; superposition is read as the fall from there.
Cost: one batched training run of 20 toy models (quick); the full budget adds the 200-feature sweep.
"""

from __future__ import annotations

from mechscope.claims.base import Budget, Measurement
from mechscope.threads import torch_threads
from mechscope.toy import SuperpositionSweep, ToyConfig, sweep_probabilities
from mechscope.toy.sweep import superposition_sweep

ID = "C08"
NULL = "none"
READS = ("dims_per_feature_dense", "dims_per_feature_sparsest", "represented_sparsest", "n_hidden")

SMALL_DENSITIES = (1.0, 0.3, 0.17, 0.09, 0.05)
RULE = ("supported if, for 5 features in 2 dimensions, the dense model stores about one feature per "
        "dimension (dims/feature >= 0.9) while at the sparsest setting dims/feature <= 0.6 with more "
        "represented features than dimensions, and the sparse geometry is a pentagon or antipodal pairs; "
        "not supported if the sparsest setting still has dims/feature >= 0.9; otherwise inconclusive")


def verdict(metrics: dict, null: dict | None = None) -> str:
    """The verdict rule (RULE), read from the metrics; the same for every model."""
    dense, sparse = metrics["dims_per_feature_dense"], metrics["dims_per_feature_sparsest"]
    if sparse >= 0.9:
        return "not supported"
    superposed = sparse <= 0.6 and metrics["represented_sparsest"] > metrics["n_hidden"]
    geometry = metrics["shape_sparsest"] in ("pentagon", "two antipodal pairs", "antipodal pair")
    if dense >= 0.9 and superposed and geometry:
        return "supported"
    return "inconclusive"


def _small_sweep(budget: Budget):
    replicas = 4 if budget.name == "quick" else 12
    cfg = ToyConfig(n_features=5, n_hidden=2, importance_decay=0.9,
                    steps=1500 if budget.name == "quick" else 4000, batch_size=512, lr=1e-2,
                    lr_schedule="cosine", seed=budget.seed, eval_samples=32768)
    run = superposition_sweep(cfg, SMALL_DENSITIES, replicas)
    return run.sweep, run.geometry, run.trained.seconds


def _large_sweep(budget: Budget) -> SuperpositionSweep:
    cfg = ToyConfig(n_features=200, n_hidden=20, importance_decay=1.0, steps=10_000, batch_size=1024, lr=1e-3,
                    seed=budget.seed)
    return superposition_sweep(cfg, sweep_probabilities(20)).sweep


def measure(model, budget: Budget) -> Measurement:
    with torch_threads(1):  # tiny matrices: one thread is fastest and does not fight a busy machine
        sweep, geometry, _ = _small_sweep(budget)
    represented = (sweep.feature_norms >= 0.5).sum(dim=1).tolist()
    metrics = {
        "n_features": 5, "n_hidden": 2,
        "feature_probability": sweep.feature_probability.tolist(),
        "dims_per_feature": [round(v, 4) for v in sweep.dims_per_feature.tolist()],
        "represented_features": represented,
        "shapes": geometry.labels,
        "dims_per_feature_dense": sweep.dims_per_feature[0].item(),
        "dims_per_feature_sparsest": sweep.dims_per_feature[-1].item(),
        "represented_sparsest": represented[-1],
        "shape_sparsest": geometry.labels[-1],
        "pentagon_gaps_deg": [round(g, 1) for g in geometry.shapes[-1].adjacent_gaps],
    }
    figures = [geometry.figure(), sweep.figure()]
    evidence_large = ""
    if budget.name != "quick":
        large = _large_sweep(budget)
        inv = large.inverse_density
        plateau = large.dims_per_feature[(inv >= 2.2) & (inv <= 3.5)]
        metrics["large_dims_per_feature"] = [round(v, 4) for v in large.dims_per_feature.tolist()]
        metrics["large_plateau_dims_per_feature"] = plateau.mean().item() if plateau.numel() else float("nan")
        metrics["large_fraction_counts_sparsest"] = large.fraction_counts()[-1]
        figures.append(large.figure())
        evidence_large = (f" With 200 features in 20 dimensions, dims/feature averages "
                          f"{metrics['large_plateau_dims_per_feature']:.3f} for 1/(1-S) in [2.2, 3.5].")
    evidence = (f"Dense (p=1): {metrics['dims_per_feature_dense']:.2f} dims/feature, shape "
                f"'{geometry.labels[0]}'. Sparsest (p={SMALL_DENSITIES[-1]}): "
                f"{metrics['dims_per_feature_sparsest']:.2f} dims/feature with {represented[-1]} of 5 features "
                f"stored in 2 dimensions as '{geometry.labels[-1]}'. Shapes by density: "
                f"{', '.join(geometry.labels)}." + evidence_large)
    method = ("Trains toy models x' = ReLU(WᵀWx + b) (Elhage et al. 2022) independently of the language "
              "model passed in, since the claim concerns toy models. 5 features (importance 0.9^i) in 2 "
              f"dimensions at feature densities {list(SMALL_DENSITIES)}, each from "
              f"{'4' if budget.name == 'quick' else '12'} seeds trained at once as instances, keeping the "
              "lowest-loss seed; AdamW with cosine lr from 1e-2, batch 512. Measures dims/feature m/‖W‖²_F, "
              "per-feature dimensionality and the 2-D shape of the feature vectors."
              + (" Full budget adds the paper's 200-feature, 20-dimension sweep (20 sparsities, 10k steps)."
                 if budget.name != "quick" else ""))
    return Measurement(metrics=metrics, key_metric="dims_per_feature_sparsest", null_key="dims_per_feature_dense",
                       evidence=evidence, method=method, figures=figures)
