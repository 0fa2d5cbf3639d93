"""Positional helix on a planted W_pos and on models; token-embedding probes and neighbours."""

import numpy as np
import pytest

from mechscope.errors import NotApplicableError
from mechscope.geometry.positional import positional_geometry, positional_geometry_of
from mechscope.geometry.token_embeddings import token_embedding_geometry, token_properties


def _planted_w_pos(n=128, d=64, period=32, seed=0):
    rng = np.random.default_rng(seed)
    p = np.arange(n, dtype=float)
    wave = np.stack([np.cos(2 * np.pi * p / period), np.sin(2 * np.pi * p / period)], axis=1)
    late = p - p[1:].mean()
    basis, _ = np.linalg.qr(rng.normal(size=(d, 4)))
    rows = np.concatenate([2.5 * late[:, None] / late.std(), wave, np.zeros((n, 1))], axis=1)
    rows[0, 3] = 20.0                                           # the first-token direction
    return rows @ basis.T + 0.01 * rng.normal(size=(n, d)), period


def test_planted_helix_is_recovered():
    w_pos, period = _planted_w_pos()
    r = positional_geometry_of(w_pos)
    assert r.top3_explained > 0.97
    assert r.pc1_spearman > 0.95
    assert min(r.helix_r2) > 0.8
    assert r.helix_period == pytest.approx(period, rel=0.05)
    assert r.first_token_outlier > 5
    assert r.figure().data[0].type == "scatter3d"


def test_random_positions_are_not_a_helix(tiny_gpt2_model):
    r = positional_geometry(tiny_gpt2_model)
    assert r.n_positions == tiny_gpt2_model.cfg.n_ctx
    assert r.top3_explained < 0.3 and abs(r.pc1_spearman) < 0.5
    assert "scores" not in r.to_dict()


def test_rotary_model_is_not_applicable(stories260k):
    with pytest.raises(NotApplicableError, match="rotary"):
        positional_geometry(stories260k)


def test_token_properties_from_text():
    props = token_properties([" The", "the", " 42", "ing", " Paris", "x"])
    assert props["starts with space"].tolist() == [True, False, True, False, True, False]
    assert props["capitalised"].tolist() == [True, False, False, False, True, False]
    assert props["is digits"].tolist() == [False, False, True, False, False, False]


def test_trained_embeddings_carry_properties_random_ones_do_not(stories260k, tiny_gpt2_model):
    trained = token_embedding_geometry(stories260k)
    assert trained.n_tokens > 200
    by_name = {p.name: p for p in trained.probed}
    assert by_name["starts with space"].accuracy > by_name["starts with space"].control_accuracy + 0.2
    assert " the" in trained.neighbours and len(trained.neighbours[" the"]) == 8
    assert all(s <= 1 for s in trained.neighbour_similarity[" the"])
    random = token_embedding_geometry(tiny_gpt2_model)
    assert all(abs(p.accuracy - 0.5) < 0.1 for p in random.probed)
    trained.figure()
