"""Head detectors find heads planted by hand, and the score math matches closed forms."""

from __future__ import annotations

import math

import torch

from mechscope import HookedModel
from mechscope.attention.detectors import (
    copying_scores,
    duplicate_token_scores,
    induction_scores,
    offset_score,
    previous_token_scores,
)
from mechscope.tasks.induction import repeated_tokens

PLANT_LAYER, PLANT_HEAD = 1, 2


def _planted_model():
    """A 2-layer GPT-2 with MLPs switched off and layer 1 head 2 made a previous-token head:
    positions live on a circle in dims 0-1 of W_pos; the head's query reads angle θi, its key
    is rotated by θ, so q_i·k_j ∝ cos(θ(i - j - 1)), largest at j = i - 1."""
    from tests.helpers import gpt2_tokenizer, small_hf_model

    hf = small_hf_model("gpt2", seed=1, n_ctx=64)
    theta, gain = 0.25, 60.0
    with torch.no_grad():
        d = hf.config.n_embd
        d_head = d // hf.config.n_head
        tr = hf.transformer
        tr.wte.weight.mul_(0.05)                                          # tokens quiet next to positions
        pos = torch.arange(tr.wpe.weight.shape[0], dtype=torch.float)
        tr.wpe.weight.zero_()
        tr.wpe.weight[:, 0], tr.wpe.weight[:, 1] = torch.cos(theta * pos), torch.sin(theta * pos)
        for block in tr.h:
            block.mlp.c_proj.weight.zero_()
            block.mlp.c_proj.bias.zero_()
            block.attn.c_proj.weight.mul_(0.05)
        w = tr.h[PLANT_LAYER].attn.c_attn.weight                          # Conv1D [d, 3d]: q | k | v
        q0, k0 = PLANT_HEAD * d_head, d + PLANT_HEAD * d_head
        w[:, q0:q0 + d_head] = 0
        w[:, k0:k0 + d_head] = 0
        w[0, q0], w[1, q0 + 1] = gain, gain
        c, s = math.cos(theta), math.sin(theta)                           # key = R(θ) · x
        w[0, k0], w[1, k0] = c, -s
        w[0, k0 + 1], w[1, k0 + 1] = s, c
        tr.h[PLANT_LAYER].attn.c_attn.bias.zero_()
    return HookedModel.from_hf(hf, gpt2_tokenizer(), spec="random:planted")


def test_detects_planted_previous_token_head():
    model = _planted_model()
    rep = repeated_tokens(model, 4, 10, seed=0)
    scores = previous_token_scores(model, rep.tokens)
    top = scores.top(1)[0]
    assert (top[0], top[1]) == (PLANT_LAYER, PLANT_HEAD)
    assert top[2] > 0.8
    others = scores.scores.clone()
    others[PLANT_LAYER, PLANT_HEAD] = 0
    assert others.max() < 0.5


def test_offset_scores_on_synthetic_patterns():
    """A head that attends exactly to q - n + 1 scores 1 for induction, 0 for duplicate."""
    n, start = 5, 1
    T = start + 2 * n
    pattern = torch.zeros(1, 1, 2, T, T)
    for q in range(T):
        pattern[0, 0, 0, q, max(0, q - n + 1) if q >= start + n else 0] = 1.0   # induction head
        pattern[0, 0, 1, q, max(0, q - 1)] = 1.0                               # previous-token head
    queries = torch.arange(start + n, T)
    assert offset_score(pattern, queries, n - 1).tolist() == [[1.0, 0.0]]
    assert offset_score(pattern, queries, n).tolist() == [[0.0, 0.0]]
    assert offset_score(pattern, torch.arange(1, T), 1)[0, 1] == 1.0


def test_pattern_detectors_shapes(tiny_gpt2_model):
    rep = repeated_tokens(tiny_gpt2_model, 2, 8)
    for fn in (duplicate_token_scores, induction_scores):
        s = fn(tiny_gpt2_model, rep)
        assert s.scores.shape == (2, 4)
        assert ((s.scores >= 0) & (s.scores <= 1)).all()


def test_copying_score_sign_of_planted_ov():
    """OV = +P Pᵀ (copy) scores near +1; OV = -P Pᵀ (anti-copy) near -1 (tied embeddings)."""
    model = _planted_model()
    hf = model.hf_model
    d = hf.config.n_embd
    d_head = d // hf.config.n_head
    with torch.no_grad():
        attn = hf.transformer.h[0].attn
        for head, sign in ((0, 1.0), (1, -1.0)):
            v0 = 2 * d + head * d_head
            attn.c_attn.weight[:, v0:v0 + d_head] = torch.eye(d)[:, head * d_head:(head + 1) * d_head]
            attn.c_proj.weight[head * d_head:(head + 1) * d_head] = sign * torch.eye(d)[head * d_head:(head + 1) * d_head]
    scores = copying_scores(model, n_tokens=64)
    assert scores.eigen[0, 0] > 0.9
    assert scores.eigen[0, 1] < -0.9
    assert scores.top1[0, 0] > scores.top1[0, 1]


def test_lagged_detectors_find_the_lag_a_head_uses():
    """Head 0 looks back 3; head 1 attends 3 after the earlier occurrence (a shifted induction head);
    head 2 is the textbook induction head. The lagged detectors score each 1 at its own lag."""
    from types import SimpleNamespace

    from mechscope.attention.detectors import lagged_induction_scores, lookback_scores

    n, start = 10, 1
    T = start + 2 * n
    pattern = torch.zeros(1, 1, 3, T, T)
    for q in range(T):
        pattern[0, 0, 0, q, max(0, q - 3)] = 1.0
        pattern[0, 0, 1, q, q - n + 3 if q >= start + n else 0] = 1.0
        pattern[0, 0, 2, q, q - n + 1 if q >= start + n else 0] = 1.0
    rep = SimpleNamespace(second_copy=range(start + n, T), half_len=n, tokens=None)
    look = lookback_scores(None, patterns=pattern, max_lag=5)
    assert look.scores[0, 0] == 1.0 and look.lags[0, 0] == 3
    induction = lagged_induction_scores(None, rep, patterns=pattern, max_lag=5)
    assert induction.scores[0, 1:].tolist() == [1.0, 1.0]
    assert induction.lags[0, 1:].tolist() == [3, 1]
    assert induction.scores[0, 0] < 0.2
    assert "lag 3" in str(induction.figure().data[0].text)
