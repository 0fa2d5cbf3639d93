"""C04 and C20 claim modules: rules, planted ground truth, and runs on small models."""

import math
import types

import torch

from mechscope.claims import c04_positional_buckets as c04
from mechscope.claims import c20_sae_decomposition as c20
from mechscope.claims.base import Budget

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
    r = c04.run(_fake_model(W_pos, tokenizer), Budget(train_steps=150))
    assert r.verdict == "supported", r.evidence
    assert 8 <= r.metrics["mean_bucket_width"] <= 20
    assert r.metrics["mean_contiguity"] >= 0.9 and r.metrics["position_coverage"] >= 0.9
    assert r.figures and r.to_dict()["metrics"]["n_positional_latents"] >= 3


def test_c04_rule_rejects_single_position_latents_and_handles_rotary():
    r = c04.PositionalBuckets(n_positions=100, n_latents_alive=50, positional_latents=list(range(40)), token_latents=5,
                              mixed_latents=0, widths=[1] * 40, contiguity=[1.0] * 40, starts=list(range(40)),
                              coverage=0.4, fvu=0.1, profiles=[])
    assert c04.rule(r) == "not supported"
    r.widths = [10] * 40
    assert c04.rule(r) == "supported"
    r.contiguity = [0.6] * 40
    assert c04.rule(r) == "inconclusive"
    rotary = types.SimpleNamespace(cfg=types.SimpleNamespace(positional="rotary"), W_pos=None)
    assert c04.run(rotary, SMALL).verdict == "not applicable"


def test_c20_rule():
    assert c20.rule(0.8, 0.9, 10, 256, 3.0, 6.0, 50257) == "supported"
    assert c20.rule(0.999, 0.999, 10, 256, 3.0, 6.0, 50257) == "inconclusive"  # perfect: not "imperfect"
    assert c20.rule(0.2, 0.9, 10, 256, 3.0, 6.0, 50257) == "not supported"
    assert c20.rule(0.8, 0.9, 100, 256, 3.0, 6.0, 50257) == "inconclusive"  # not sparse
    assert c20.rule(0.8, 0.9, 10, 256, 10.8, 10.9, 50257) == "inconclusive"  # untrained model
    assert c20.rule(0.8, math.nan, 10, 256, 3.0, 3.05, 50257) == "inconclusive"


def test_c20_runs_on_a_random_model(tiny_gpt2_model):
    r = c20.run(tiny_gpt2_model, SMALL)
    assert r.verdict == "inconclusive"  # a random model's CE is ~log(vocab): nothing to recover
    per = r.metrics["per_sae"]["topk@1"]
    assert per["l0"] <= 4 and 0 <= per["dead_fraction"] <= 1 and r.metrics["layers"] == [1]
    assert len(r.figures) == 2
    full = c20.run(tiny_gpt2_model, Budget(name="full", n_sequences=2, seq_len=16, train_steps=5))
    assert full.metrics["layers"] == [0, 1] and len(full.metrics["per_sae"]) == 8


def test_c20_on_stories260k(stories260k):
    r = c20.run(stories260k, Budget(n_sequences=8, train_steps=100))
    assert r.verdict in ("supported", "inconclusive"), r.evidence
    assert r.metrics["topk_explained_variance"] > 0.4
