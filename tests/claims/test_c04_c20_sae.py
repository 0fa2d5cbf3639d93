"""C04 and C20 claim modules: rules, planted ground truth, and runs on small models."""

import types

import pytest
import torch

from mechscope.claims import c04_positional_buckets as c04
from mechscope.claims import c20_sae_decomposition as c20
from mechscope.claims.base import Budget
from mechscope.errors import NotApplicableError

SMALL = Budget(n_sequences=2, seq_len=16, train_steps=15)


def _fake_model(W_pos, tokenizer, d_vocab=50257):
    g = torch.Generator().manual_seed(7)
    W_E = 0.3 * torch.randn(d_vocab, W_pos.shape[1], generator=g)
    cfg = types.SimpleNamespace(positional="learned", d_model=W_pos.shape[1], d_vocab=d_vocab)
    return types.SimpleNamespace(cfg=cfg, W_E=W_E, W_pos=W_pos, tokenizer=tokenizer)


def test_c04_finds_planted_position_buckets(tokenizer):
    """Positions 0..127 in 8 buckets of 16 sharing one direction each: the SAE must find buckets."""
    g = torch.Generator().manual_seed(0)
    d = 32
    bucket_dirs = torch.randn(8, d, generator=g)
    bucket_dirs = 3 * bucket_dirs / bucket_dirs.norm(dim=-1, keepdim=True)
    W_pos = bucket_dirs.repeat_interleave(16, dim=0) + 0.05 * torch.randn(128, d, generator=g)
    m = c04.measure(_fake_model(W_pos, tokenizer), Budget(train_steps=150))
    assert c04.verdict(m.metrics, {"n_buckets": 0}) == "supported", m.evidence
    assert 8 <= m.metrics["mean_bucket_width"] <= 20
    assert m.metrics["mean_contiguity"] >= 0.9 and m.metrics["position_coverage"] >= 0.9
    assert m.figures and m.metrics["n_buckets"] >= 3


def test_c04_single_position_latents_are_no_buckets_and_rotary_is_not_applicable():
    r = c04.PositionalBuckets(n_positions=100, n_latents_alive=50, positional_latents=list(range(40)), token_latents=5,
                              mixed_latents=0, widths=[1] * 40, contiguity=[1.0] * 40, starts=list(range(40)),
                              coverage=0.4, fvu=0.1, profiles=[])
    assert r.buckets == [] and r.mean_contiguity == 0.0
    metrics = {"n_buckets": len(r.buckets), "mean_contiguity": r.mean_contiguity, "mean_bucket_width": r.mean_width,
               "n_positions": 100}
    assert c04.verdict(metrics, {"n_buckets": 0}) == "not supported"
    rotary = types.SimpleNamespace(cfg=types.SimpleNamespace(positional="rotary"), W_pos=None)
    with pytest.raises(NotApplicableError, match="rotary"):
        c04.measure(rotary, SMALL)


def test_c20_runs_on_a_random_model(tiny_gpt2_model):
    r = c20.measure(tiny_gpt2_model, SMALL)
    assert c20.verdict(r.metrics, None) == "inconclusive"  # a random model's CE is ~log(vocab): nothing to recover
    per = r.metrics["per_sae"]["topk@1"]
    assert per["l0"] <= 4 and 0 <= per["dead_fraction"] <= 1 and r.metrics["layers"] == [1]
    assert len(r.figures) == 2
    full = c20.measure(tiny_gpt2_model, Budget(name="full", n_sequences=2, seq_len=16, train_steps=5))
    assert full.metrics["layers"] == [0, 1] and len(full.metrics["per_sae"]) == 8


def test_c20_on_stories260k(stories260k):
    r = c20.measure(stories260k, Budget(n_sequences=8, train_steps=100))
    assert c20.verdict(r.metrics, None) in ("supported", "inconclusive"), r.evidence
    assert r.metrics["topk_explained_variance"] > 0.4
