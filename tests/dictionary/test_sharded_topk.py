"""Latent-sharded TopK SAE (dictionary/sharded_topk.py): one process equals TopKSAE, and two gloo
processes, each holding half the latents, equal one process: forward to 1e-6 before training, the
weights after 12 steps (with AuxK on dead latents) to 2e-5."""

import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mechscope.dictionary import SAEConfig
from mechscope.dictionary.sharded_topk import ShardedTopKSAE
from mechscope.errors import InputError
from tests.helpers import run_on_ranks

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def worker():
    sys.path.insert(0, str(HERE))
    try:
        import shard_worker
    finally:
        sys.path.remove(str(HERE))
    return shard_worker


def test_one_shard_is_the_plain_topk_sae(tmp_path, worker, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    worker.main(str(tmp_path / "plain.safetensors"), plain=True)
    worker.main(str(tmp_path / "one.safetensors"))
    plain, one = load_file(str(tmp_path / "plain.safetensors")), load_file(str(tmp_path / "one.safetensors"))
    for k in plain:
        torch.testing.assert_close(one[k], plain[k], atol=2e-5, rtol=1e-4, msg=k)


def test_two_gloo_ranks_equal_one_process(tmp_path, worker, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    worker.main(str(tmp_path / "plain.safetensors"), plain=True)
    plain = load_file(str(tmp_path / "plain.safetensors"))
    run_on_ranks([HERE / "shard_worker.py", tmp_path / "two.safetensors"], 2, timeout=180)
    two = load_file(str(tmp_path / "two.safetensors"))
    torch.testing.assert_close(two["before"], plain["before"], atol=1e-6, rtol=1e-6)
    for k in plain:
        torch.testing.assert_close(two[k], plain[k], atol=2e-5, rtol=1e-4, msg=k)
    assert float(plain["auxk_loss"].max()) > 0                               # dead latents were revived by AuxK
    init = ShardedTopKSAE(worker.CFG)
    assert (plain["W_enc"] - init.W_enc.detach()).abs().max() > 1e-2       # training moved the weights


def test_only_topk_and_even_splits():
    with pytest.raises(InputError, match="TopK"):
        ShardedTopKSAE(SAEConfig(d_in=4, d_sae=8, architecture="relu_l1"))
