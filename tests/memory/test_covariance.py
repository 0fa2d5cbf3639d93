"""Key second moment: equals a direct computation; a killed run resumes to the same sums bit for bit."""

from __future__ import annotations

import pytest
import torch

from mechscope.data.text import eval_tokens
from mechscope.errors import CheckpointError, InputError
from mechscope.memory import covariance as cov


def test_matches_a_direct_computation(organism):
    result = cov.key_covariance(organism, 1, n_tokens=512, seq_len=64, batch_size=3)
    tokens = eval_tokens(organism, seq_len=64, n_sequences=8, seed=0)
    _, cache = organism.run_with_cache(tokens, names="blocks.1.mlp.hook_post")
    k = cache["blocks.1.mlp.hook_post"].reshape(-1, organism.cfg.d_mlp).double()
    expected = k.T @ k / k.shape[0]
    assert result.n_tokens == 512 and result.second_moment.dtype == torch.float64
    torch.testing.assert_close(result.second_moment, expected, rtol=1e-10, atol=1e-12)
    assert result.to_dict()["min_eigenvalue"] >= -1e-9


def test_killed_run_resumes_bit_for_bit(organism, tmp_path, monkeypatch):
    ckpt = tmp_path / "cov.safetensors"
    full = cov.key_covariance(organism, [0, 2], n_tokens=640, seq_len=32, batch_size=4)
    calls = {"n": 0}
    real = cov.batch_keys

    def dying(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(cov, "batch_keys", dying)
    with pytest.raises(KeyboardInterrupt):
        cov.key_covariance(organism, [0, 2], n_tokens=640, seq_len=32, batch_size=4, checkpoint=ckpt,
                           checkpoint_every=2)
    monkeypatch.setattr(cov, "batch_keys", real)
    assert ckpt.exists()
    resumed_calls = {"n": 0}

    def counting(*args, **kwargs):
        resumed_calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(cov, "batch_keys", counting)
    resumed = cov.key_covariance(organism, [0, 2], n_tokens=640, seq_len=32, batch_size=4, checkpoint=ckpt,
                                 checkpoint_every=2)
    assert resumed_calls["n"] == 5 - 2                    # 5 batches, 2 saved before the kill
    for layer in (0, 2):
        assert torch.equal(resumed[layer].second_moment, full[layer].second_moment)
    with pytest.raises(CheckpointError, match="another run"):
        cov.key_covariance(organism, [0, 2], n_tokens=320, seq_len=32, batch_size=4, checkpoint=ckpt)


def test_bad_layer(organism):
    with pytest.raises(InputError, match="out of range"):
        cov.key_covariance(organism, 4, n_tokens=64)
