"""Linear concept directions from word pairs (Park et al. 2023, "The Linear Representation Hypothesis
and the Geometry of Large Language Models").

A concept W (e.g. singular → plural) is given by counterfactual word pairs (y0, y1) that differ only in W.
Its direction in a space of word vectors v(y) is the normalised mean difference
γ̄_W = mean_i (v(y1_i) - v(y0_i)) / ‖·‖ ("difference of means").

Word vectors come from the unembedding (Park's γ: rows of W_U) or from the residual stream at any hook
(the activation at the word's own position, after BOS).

The causal inner product ⟨x, y⟩_C = xᵀ Cov(γ)⁻¹ y whitens by the covariance of the unembedding rows over
the vocabulary; Park et al. show causally separable concepts (e.g. male→female and lower→upper) are
orthogonal under it but not in general under the Euclidean one. Equivalently, in the whitened vectors
g(y) = γ(y) Cov(γ)^{-1/2} the plain dot product is the causal one.

The leave-one-out test: for each pair i, project its difference onto the direction built from the other
pairs, and compare with the projections of the differences of random word pairs onto the full direction;
a concept that is a direction puts its held-out pairs far in the right tail.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from mechscope.errors import InputError
from mechscope.geometry.word_pairs import ConceptPairs, default_concepts
from mechscope.results import Result


@dataclasses.dataclass
class CausalInnerProduct:
    """⟨x, y⟩_C = xᵀ Cov(γ)⁻¹ y from unembedding rows γ [V d].

    mean: [d] mean row; inv_sqrt: [d d] Cov(γ)^{-1/2}; inv: [d d] Cov(γ)⁻¹ (float64).
    """

    mean: torch.Tensor
    inv_sqrt: torch.Tensor
    inv: torch.Tensor

    def whiten(self, x: torch.Tensor) -> torch.Tensor:
        """g = x Cov^{-1/2} (rows of x [.. d]); Euclidean geometry of g = causal geometry of x."""
        return x.to(self.inv_sqrt.dtype) @ self.inv_sqrt

    def cosine(self, x: torch.Tensor, y: torch.Tensor) -> float:
        x, y = x.to(self.inv.dtype), y.to(self.inv.dtype)
        return float(x @ self.inv @ y / torch.sqrt((x @ self.inv @ x) * (y @ self.inv @ y)))

    def dual(self, direction: torch.Tensor) -> torch.Tensor:
        """Cov⁻¹ γ̄: the embedding-side vector whose dot product with γ(y) is ⟨γ̄, γ(y)⟩_C (Park's λ̄_W)."""
        return self.inv @ direction.to(self.inv.dtype)


def causal_inner_product(unembedding: torch.Tensor, rel_floor: float = 1e-8) -> CausalInnerProduct:
    """From unembedding rows [V d]: Cov = centredᵀ centred / V, inverted through its eigendecomposition.
    Eigenvalues below rel_floor × the largest are raised to it (a rank-deficient W_U stays invertible)."""
    g = unembedding.detach().to(torch.float64)
    mean = g.mean(0)
    centred = g - mean
    cov = centred.T @ centred / g.shape[0]
    vals, vecs = torch.linalg.eigh(cov)
    vals = vals.clamp_min(float(vals.max()) * rel_floor)
    return CausalInnerProduct(mean=mean, inv_sqrt=vecs @ torch.diag(vals**-0.5) @ vecs.T,
                              inv=vecs @ torch.diag(1 / vals) @ vecs.T)


def concept_direction(vectors: torch.Tensor, base_ids, target_ids) -> tuple[torch.Tensor, torch.Tensor]:
    """(unit mean difference [d], differences [n d]) of rows target_ids - base_ids of vectors [V d]."""
    diffs = vectors[list(target_ids)] - vectors[list(base_ids)]
    mean = diffs.mean(0)
    if not float(mean.norm()) > 0:
        raise InputError("the pair differences average to zero in this space (the vectors do not tell the pair "
                         "words apart), so the concept has no direction here; try another space")
    return mean / mean.norm(), diffs


def loo_projections(diffs: torch.Tensor) -> torch.Tensor:
    """[n] each difference projected onto the unit mean of the other n-1 differences."""
    n = diffs.shape[0]
    total = diffs.sum(0)
    out = []
    for i in range(n):
        rest = (total - diffs[i]) / (n - 1)
        out.append(diffs[i] @ rest / rest.norm())
    return torch.stack(out)


@dataclasses.dataclass
class ConceptScore:
    """Leave-one-out test of one concept in one geometry.

    loo: [n] held-out projections; random_q95: 95th percentile of random pairs' projections; share_above:
    share of held-out pairs above it; loo_accuracy: share with a positive projection (the direction, as a
    probe, orders each held-out pair right); z: (mean loo - mean random) / std random.
    """

    name: str
    n_pairs: int
    loo: list[float]
    random_mean: float
    random_q95: float
    share_above: float
    loo_accuracy: float
    z: float


def score_concept(vectors: torch.Tensor, pairs: ConceptPairs, random_diffs: torch.Tensor) -> ConceptScore:
    direction, diffs = concept_direction(vectors, pairs.base_ids, pairs.target_ids)
    loo = loo_projections(diffs)
    rand = random_diffs @ direction
    q95 = float(torch.quantile(rand, 0.95))
    return ConceptScore(
        name=pairs.name, n_pairs=len(pairs), loo=[float(v) for v in loo], random_mean=float(rand.mean()),
        random_q95=q95, share_above=float((loo > q95).double().mean()), loo_accuracy=float((loo > 0).double().mean()),
        z=float((loo.mean() - rand.mean()) / rand.std().clamp_min(1e-12)))


@dataclasses.dataclass
class LinearConceptsResult(Result):
    """Concept directions in one space, under the Euclidean and the causal inner product.

    space: "unembedding" or a hook name. names: [c] concepts. directions: [c d] unit γ̄_W (Euclidean).
    cos_euclidean / cos_causal: [c c] cosines between concept directions. euclidean / causal: per-concept
    leave-one-out scores in the raw and the whitened (g) vectors.
    """

    space: str
    names: list[str]
    directions: np.ndarray
    cos_euclidean: np.ndarray
    cos_causal: np.ndarray
    euclidean: list[ConceptScore]
    causal: list[ConceptScore]

    _json_exclude = ("directions",)

    def figure(self):
        """Two heatmaps of cosines between concept directions: Euclidean and causal."""
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        fig = make_subplots(rows=1, cols=2, subplot_titles=("Euclidean cos", "causal cos (Cov(γ)⁻¹)"))
        for col, mat in ((1, self.cos_euclidean), (2, self.cos_causal)):
            fig.add_trace(go.Heatmap(z=mat, x=self.names, y=self.names, zmin=-1, zmax=1, colorscale="RdBu",
                                     showscale=col == 2, texttemplate="%{z:.2f}"), row=1, col=col)
        fig.update_layout(title=f"concept directions in {self.space}")
        return fig


def word_vectors(model, space: str = "unembedding", ids: Sequence[int] | None = None) -> torch.Tensor:
    """Vectors per token (float64): rows of W_U, [V d] ("unembedding"), or, for a hook name, the activation
    there for each token of `ids` alone after BOS, [len(ids) d] in the order of `ids`."""
    if space == "unembedding":
        w = model.W_U.detach().to(torch.float64)
        return w.T if w.shape[0] != model.cfg.d_vocab else w
    if space not in model.hook_names():
        raise InputError(f"space {space!r} is neither 'unembedding' nor a hook name of this model "
                         f"(e.g. 'blocks.0.hook_resid_post')")
    ids = list(ids or [])
    bos = [model.bos_token_id] if model.bos_token_id is not None else []
    tokens = torch.tensor([[*bos, i] for i in ids], device=model.device)
    _, cache = model.run_with_cache(tokens, names=[space])
    return cache[space][:, -1].detach().to(torch.float64).cpu()


def _reindexed(c: ConceptPairs, row: dict[int, int]) -> ConceptPairs:
    return ConceptPairs(c.name, c.base_words, c.target_words, [row[i] for i in c.base_ids],
                        [row[i] for i in c.target_ids])


def linear_concepts(model, concepts: Mapping[str, ConceptPairs] | None = None, *, space: str = "unembedding",
                    n_random: int = 2000, seed: int = 0) -> LinearConceptsResult:
    """Directions, cosines and leave-one-out scores of `concepts` (default: `default_concepts(model)`)."""
    concepts = dict(concepts or default_concepts(model))
    gamma = word_vectors(model, "unembedding")
    cip = causal_inner_product(gamma)
    used = sorted({i for c in concepts.values() for i in (*c.base_ids, *c.target_ids)})
    gen = torch.Generator().manual_seed(seed)
    if space == "unembedding":
        vectors, pool = gamma, torch.arange(gamma.shape[0])
    else:   # activations of the pair words and of a random pool of tokens, one row each
        others = [i for i in torch.randperm(model.cfg.d_vocab, generator=gen).tolist() if i not in set(used)]
        ids = used + others[:max(200, len(used))]
        vectors = word_vectors(model, space, ids)
        row = {t: r for r, t in enumerate(ids)}
        concepts = {k: _reindexed(c, row) for k, c in concepts.items()}
        pool = torch.arange(len(used), len(ids))
    pick = pool[torch.randint(len(pool), (n_random, 2), generator=gen)]
    random_diffs = vectors[pick[:, 1]] - vectors[pick[:, 0]]
    whitened, random_g = cip.whiten(vectors), cip.whiten(random_diffs)
    names = list(concepts)
    dirs = torch.stack([concept_direction(vectors, c.base_ids, c.target_ids)[0] for c in concepts.values()])
    n = len(names)
    cos_e = np.array([[float(dirs[i] @ dirs[j]) for j in range(n)] for i in range(n)])
    cos_c = np.array([[cip.cosine(dirs[i], dirs[j]) for j in range(n)] for i in range(n)])
    return LinearConceptsResult(
        space=space, names=names, directions=dirs.numpy(), cos_euclidean=cos_e, cos_causal=cos_c,
        euclidean=[score_concept(vectors, c, random_diffs) for c in concepts.values()],
        causal=[score_concept(whitened, c, random_g) for c in concepts.values()])
