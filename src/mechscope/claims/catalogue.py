"""The 21 claims of the catalogue (CLAIMS.md) as data.

The report lists every entry here, whether or not a claim module implements it yet: a claim
without a module appears as "not implemented", listed rather than hidden. A claim module
(``claims/cNN_slug.py``) supplies the experiment; this table supplies what the reader needs to
know about a claim before any experiment runs.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class CatalogueEntry:
    """One claim of the catalogue.

    id: "C09"; slug: "induction-heads"; title: the claim in one sentence;
    experiment: how it is tested; reads: the numbers the verdict reads;
    reference: published numbers on models we cannot load here ("—" when none).
    """

    id: str
    slug: str
    title: str
    experiment: str
    reads: str
    reference: str


CATALOGUE: tuple[CatalogueEntry, ...] = (
    CatalogueEntry(
        "C01", "residual-accumulation",
        "The residual stream accumulates the prediction layer by layer",
        "Logit lens at every layer's resid_post (final norm + unembed); tuned lens (per-layer affine "
        "translator h + A h + b, zero-init, trained to minimise KL to the final distribution).",
        "Per-layer CE loss and KL to final; tuned lens ≤ logit lens at every layer.",
        "nostalgebraist 2020; Belrose et al. 2023 (arXiv 2303.08112): tuned beats logit lens at every "
        "layer; logit lens is poor on some models (GPT-Neo).",
    ),
    CatalogueEntry(
        "C02", "norm-growth",
        "Residual-stream norm grows roughly exponentially through the forward pass",
        "Mean norm of resid per layer, position 0 excluded; fit log-norm vs layer; per-layer OV weight norms.",
        "Growth factor per layer, fit R².",
        "Heimersheim & Turner 2023: ≈1.045×/layer in GPT-2 XL; some models decrease.",
    ),
    CatalogueEntry(
        "C03", "positional-helix",
        "Learned positional embeddings are low-dimensional: a first-token direction, a monotone "
        "\"lateness\" direction and a sinusoidal pair (a helix)",
        "PCA of W_pos rows 1..k; monotonicity of PC1 vs position; sinusoid fit of PC2/PC3; row 0 outlier score.",
        "Variance explained by top 3 PCs; Spearman of PC1 vs position.",
        "Yedidia 2023; Chughtai & Lau 2024: top 3 PCs explain 95% (rows 1–127).",
    ),
    CatalogueEntry(
        "C04", "positional-buckets",
        "An SAE on embeddings splits the positional helix into position \"buckets\"",
        "Train an SAE on token+position embeddings; each latent's position profile.",
        "Number of positional latents, mean width of their position range, overlap with token latents.",
        "Chughtai & Lau 2024.",
    ),
    CatalogueEntry(
        "C05", "token-embeddings",
        "Token embeddings carry token-level features (related tokens cluster)",
        "Nearest neighbours / clustering of W_E; linear probes of simple token properties.",
        "Probe accuracy vs shuffled control.",
        "—",
    ),
    CatalogueEntry(
        "C06", "linear-representation",
        "Concepts are linear directions that add (α·v_A + β·v_B)",
        "Difference-of-means directions for paired concepts; probe; steering by adding α·v; additivity "
        "test of two steerings.",
        "Probe accuracy, steering effect vs α, additivity error.",
        "Park et al. 2023 (arXiv 2311.03658).",
    ),
    CatalogueEntry(
        "C07", "circular-features",
        "Some features are multi-dimensional (days of the week on a circle)",
        "PCA / SAE-cluster of activations on day-of-week (and month) tokens in context; circle fit; "
        "circular-probe intervention \"n days after X is\".",
        "Circle-fit quality, angular order matches week order, intervention accuracy.",
        "Engels et al. 2024 (arXiv 2405.14860).",
    ),
    CatalogueEntry(
        "C08", "superposition",
        "Sparse features are stored in superposition (more features than dimensions)",
        "Toy models x' = ReLU(WᵀWx + b), importance-weighted MSE; sparsity sweeps.",
        "Dimensions per feature m/‖W‖²_F; per-feature dimensionality D_i; geometry (antipodal pairs, pentagons).",
        "Elhage et al. 2022: n=5, m=2 → pentagon at high sparsity; n=200, m=20 → plateau ≈0.5 "
        "dims/feature for 1/(1−S)∈[2.2, 3.5], clusters at 3/8, 2/5.",
    ),
    CatalogueEntry(
        "C09", "induction-heads",
        "Some heads implement induction: attend to the token after the previous occurrence and copy it",
        "Repeated random-token sequences; prefix-matching score per head; copying score (OV circuit); "
        "in-context-learning score (loss late vs early); ablation effect.",
        "Scores per head, loss drop on the repeat.",
        "Olsson et al. 2022; GPT-2 small heads 5.5, 6.9, 7.10, 5.1, 7.2 score 0.83–0.93.",
    ),
    CatalogueEntry(
        "C10", "ioi-circuit",
        "A small set of heads implements indirect object identification",
        "IOI prompts (BABA/ABBA templates), logit diff IO−S; path patching; head classes.",
        "Logit diff, accuracy, circuit faithfulness.",
        "Wang et al. 2022: logit diff 3.56, 99.3% correct, circuit 87% faithful.",
    ),
    CatalogueEntry(
        "C11", "docstring",
        "Docstring argument completion is done by a multi-level attention circuit",
        "Docstring prompts with clean/corrupt argument names; patching.",
        "Logit diff, circuit recovered.",
        "Heimersheim & Janiak 2023 (attn-only-4l: heads 0.5, 1.2, 1.4, 2.0, 3.0, 3.6).",
    ),
    CatalogueEntry(
        "C12", "information-movement",
        "Information moves between positions through attention",
        "Residual-stream activation patching over (layer, position) grids on clean/corrupt pairs.",
        "Where the effect sits, layer by layer.",
        "IOI / factual recall patching figures.",
    ),
    CatalogueEntry(
        "C13", "circuits-not-crisp",
        "A few components do not explain a behaviour; faithfulness rises slowly as components are added",
        "ACDC / EAP / EAP-IG; faithfulness vs number of edges or nodes.",
        "Area under the faithfulness curve; components needed for 80%.",
        "Conmy et al. 2023 (ACDC IOI edge AUC .868 KL), Syed et al. 2023, Hanna et al. 2024; Miller et al. 2024.",
    ),
    CatalogueEntry(
        "C14", "mlp-memory",
        "MLPs store facts as key-value memories, distributed over layers",
        "Neuron key/value analysis (top-activating inputs, value → vocab); causal tracing with noised "
        "subject (3× embedding std, restore windows); rank-one edit (ROME) and its efficacy/specificity.",
        "Indirect effect by layer × position; edit success.",
        "Geva et al. 2021; Meng et al. 2022 (ROME), MEMIT.",
    ),
    CatalogueEntry(
        "C15", "and-or-features",
        "Later features are AND/OR gates of earlier ones",
        "SAE latents in adjacent layers; conditional activation tables; gate classification.",
        "Fraction of latents explained by AND/OR of parents.",
        "Balcells et al. 2024 (arXiv 2410.08869); Marks et al. 2024.",
    ),
    CatalogueEntry(
        "C16", "layernorm-removable",
        "LayerNorm does nothing substantial: it can be fine-tuned away",
        "Fine-tune with each LN replaced by a fixed scale, one at a time; compare with a plain fine-tune.",
        "CE loss with vs without LN.",
        "Heimersheim 2024: +0.05 CE for GPT-2 small; Baroni et al. 2025: 3.0126 → 3.0797.",
    ),
    CatalogueEntry(
        "C17", "norm-dilution",
        "Because norm grows, old features shrink in relative importance",
        "Ratio of a feature written early to total norm across layers.",
        "Relative share vs layer.",
        "Turner; seed text.",
    ),
    CatalogueEntry(
        "C18", "stages",
        "Early and late layers are special; middle layers are robust (stages of inference)",
        "Delete a layer / swap adjacent layers; top-1 agreement with the original model.",
        "Retained accuracy per layer.",
        "Lad et al. 2024: 72–95% retained, first and last layers most sensitive.",
    ),
    CatalogueEntry(
        "C19", "abba-baba",
        "The residual stream holds internal variables such as ABBA vs BABA order",
        "Linear probe for name order at each layer/position; patching of position vs token signal.",
        "Probe accuracy by layer.",
        "Wang et al. 2022; Merullo et al. 2024.",
    ),
    CatalogueEntry(
        "C20", "sae-decomposition",
        "SAEs decompose activations into sparse, more interpretable features, imperfectly",
        "SAEs (ReLU+L1, TopK, BatchTopK, JumpReLU); L0, explained variance, CE loss recovered, dead "
        "latents, absorption.",
        "Metrics per layer.",
        "GPT-2 small resid SAEs (Bloom): L0 10…70 by layer.",
    ),
    CatalogueEntry(
        "C21", "feature-interactions-dense",
        "Feature-to-feature interactions across layers are not sparse",
        "Transcoders / crosscoders; attribution between features of adjacent layers.",
        "How many downstream features a feature affects above a threshold.",
        "Lindsey et al. 2024 (crosscoders); Dunefsky et al. 2024 (transcoders); Ameisen et al. 2025.",
    ),
)

BY_ID: dict[str, CatalogueEntry] = {entry.id: entry for entry in CATALOGUE}
