"""Concept directions and the causal inner product against a planted unembedding (Park et al.)."""

from __future__ import annotations

import math

import pytest
import torch

from mechscope.errors import InputError
from mechscope.geometry.concepts import (
    causal_inner_product,
    concept_direction,
    loo_projections,
    score_concept,
)
from mechscope.geometry.word_pairs import ConceptPairs, concept_pairs


def planted_unembedding(seed: int = 0, vocab: int = 3000, d: int = 32, n_pairs: int = 20):
    """γ = z Aᵀ with z ~ N(0, I) and a strongly anisotropic A (singular values 3 and 1 on the concept plane).
    Concepts u1 = (e0 + e1)/√2, u2 = (e0 - e1)/√2 are orthogonal in z (causally separable) while A u1, A u2
    have Euclidean cosine (9 - 1)/(9 + 1) = 0.8 before the random rotation (which keeps cosines)."""
    g = torch.Generator().manual_seed(seed)
    scales = torch.cat([torch.tensor([3.0, 1.0]), torch.linspace(0.3, 2.0, d - 2)]).double()
    rotation, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    a = rotation @ torch.diag(scales)
    z = torch.randn(vocab, d, generator=g, dtype=torch.float64)
    u = [torch.zeros(d, dtype=torch.float64) for _ in range(2)]
    u[0][:2] = torch.tensor([1.0, 1.0]) / math.sqrt(2)
    u[1][:2] = torch.tensor([1.0, -1.0]) / math.sqrt(2)
    concepts = []
    for c in range(2):
        base = list(range(c * 2 * n_pairs, c * 2 * n_pairs + n_pairs))
        target = [b + n_pairs for b in base]
        z[target] = z[base] + 6.0 * u[c] + 0.1 * torch.randn(n_pairs, d, generator=g, dtype=torch.float64)
        concepts.append(ConceptPairs(f"c{c}", [str(i) for i in base], [str(i) for i in target], base, target))
    gamma = z @ a.T
    planted = [a @ ui for ui in u]
    return gamma, concepts, [p / p.norm() for p in planted]


def test_planted_directions_come_back_and_are_causally_orthogonal():
    gamma, concepts, planted = planted_unembedding()
    cip = causal_inner_product(gamma)
    dirs = []
    for c, p in zip(concepts, planted, strict=True):
        d, _ = concept_direction(gamma, c.base_ids, c.target_ids)
        assert float(d @ p) >= 0.95
        dirs.append(d)
    assert abs(float(dirs[0] @ dirs[1])) >= 0.3
    assert abs(cip.cosine(dirs[0], dirs[1])) <= 0.1
    # whitening turns the causal inner product into the Euclidean one
    g0, g1 = cip.whiten(dirs[0]), cip.whiten(dirs[1])
    assert abs(float(g0 @ g1 / (g0.norm() * g1.norm())) - cip.cosine(dirs[0], dirs[1])) < 1e-9


def test_loo_projection_matches_a_hand_loop_and_separates_concepts_from_random_pairs():
    gamma, concepts, _ = planted_unembedding(seed=1)
    c = concepts[0]
    _, diffs = concept_direction(gamma, c.base_ids, c.target_ids)
    loo = loo_projections(diffs)
    for i in (0, 7):
        rest = torch.cat([diffs[:i], diffs[i + 1:]]).mean(0)
        assert float(loo[i]) == pytest.approx(float(diffs[i] @ rest / rest.norm()), rel=1e-12)
    g = torch.Generator().manual_seed(0)
    pick = torch.randint(gamma.shape[0], (2000, 2), generator=g)
    score = score_concept(gamma, c, gamma[pick[:, 1]] - gamma[pick[:, 0]])
    assert score.share_above >= 0.9 and score.loo_accuracy == 1.0
    # a "concept" of random pairs is not a direction
    fake = ConceptPairs("random", [], [], list(range(2500, 2520)), list(range(2600, 2620)))
    fake_score = score_concept(gamma, fake, gamma[pick[:, 1]] - gamma[pick[:, 0]])
    assert fake_score.share_above <= 0.3


def test_bad_pairs_give_clear_errors(tiny_gpt2_model):
    with pytest.raises(InputError, match="not single known tokens"):
        concept_pairs(tiny_gpt2_model, "x", [("cat", "cats"), ("dog", "dogs"), ("hippopotamus", "hippopotami")])
    with pytest.raises(InputError, match="at least 3"):
        concept_pairs(tiny_gpt2_model, "x", [("cat", "cats"), ("dog", "dogs")])
    with pytest.raises(InputError, match="same token"):
        concept_pairs(tiny_gpt2_model, "x", [("cat", "cat"), ("dog", "dogs"), ("man", "men")])
    ok = concept_pairs(tiny_gpt2_model, "plural", [("cat", "cats"), ("dog", "dogs"), ("man", "men")])
    assert len(ok) == 3 and ok.base_ids[0] == tiny_gpt2_model.tokenizer.encode(" cat")[0]


def test_residual_space_vectors_are_the_activation_of_the_word_after_bos():
    import mechscope
    from mechscope.geometry.concepts import linear_concepts, word_vectors
    from mechscope.geometry.word_pairs import default_concepts

    m = mechscope.load("organism:tiny-gpt2")
    hook = "blocks.1.hook_resid_post"
    ids = m.tokenizer.encode(" apples dog", add_special_tokens=False)
    vecs = word_vectors(m, hook, ids)
    for row, i in enumerate(ids):
        _, cache = m.run_with_cache(torch.tensor([[m.bos_token_id, i]]), names=[hook])
        torch.testing.assert_close(vecs[row], cache[hook][0, -1].double(), rtol=1e-4, atol=1e-4)  # batched fp32
    r = linear_concepts(m, default_concepts(m), space=hook)
    assert r.space == hook and len(r.causal) == len(r.names) and r.cos_euclidean.shape == (3, 3)
    assert all(0.5 <= s.loo_accuracy <= 1.0 for s in r.euclidean)
