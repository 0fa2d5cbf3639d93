"""Activation store: harvested shards equal run_with_cache, resume after a kill, shuffled reading."""

import json

import pytest
import torch

from mechscope.data.activation_store import (
    ActivationStore,
    ShuffleBuffer,
    capture_activations,
    harvest_activations,
    stream_activations,
)
from mechscope.errors import CheckpointError, MechscopeError

HOOKS = ["blocks.0.hook_resid_post", "blocks.1.attn.hook_z"]


@pytest.fixture(scope="module")
def tokens():
    return torch.randint(0, 5000, (10, 8), generator=torch.Generator().manual_seed(0))


def test_harvest_equals_run_with_cache(tiny_gpt2_model, tokens, tmp_path):
    store = harvest_activations(tiny_gpt2_model, tokens, HOOKS, tmp_path, batch_size=3, shard_tokens=32)
    assert store.complete and store.n_tokens == 80 and len(store.manifest["shards"]) == 3
    assert store.d("blocks.1.attn.hook_z") == 64
    _, cache = tiny_gpt2_model.run_with_cache(tokens, names=HOOKS)
    got = {h: torch.cat([store.load_shard(i)[h] for i in range(3)]) for h in HOOKS}
    torch.testing.assert_close(got[HOOKS[0]], cache[HOOKS[0]].reshape(80, 64))
    torch.testing.assert_close(got[HOOKS[1]], cache[HOOKS[1]].reshape(80, 64))
    assert torch.equal(torch.cat([store.load_shard(i)["tokens"] for i in range(3)]), tokens)


def test_early_stop_leaves_model_intact(tiny_gpt2_model, tokens):
    before = tiny_gpt2_model(tokens[:2])
    acts = capture_activations(tiny_gpt2_model, tokens[:2], ["blocks.0.hook_resid_pre"], drop_first_position=True)
    assert acts["blocks.0.hook_resid_pre"].shape == (2 * 7, 64)
    torch.testing.assert_close(tiny_gpt2_model(tokens[:2]), before)
    with pytest.raises(MechscopeError, match="blocks.9"):
        capture_activations(tiny_gpt2_model, tokens[:2], ["blocks.9.hook_resid_pre"])


def test_resume_after_a_kill(tiny_gpt2_model, tokens, tmp_path):
    full = harvest_activations(tiny_gpt2_model, tokens, HOOKS[:1], tmp_path / "full", batch_size=4, shard_tokens=16)
    # simulate a kill: a run that only got through the first 4 sequences, plus a half-written temp file
    harvest_activations(tiny_gpt2_model, tokens[:4], HOOKS[:1], tmp_path / "killed", batch_size=4, shard_tokens=16)
    m = json.loads((tmp_path / "killed" / "manifest.json").read_text())
    m.update(n_sequences=10, tokens_fingerprint=full.manifest["tokens_fingerprint"], complete=False)
    (tmp_path / "killed" / "manifest.json").write_text(json.dumps(m))
    (tmp_path / "killed" / ".shard_00002.safetensors.abc.tmp").write_bytes(b"garbage")
    resumed = harvest_activations(tiny_gpt2_model, tokens, HOOKS[:1], tmp_path / "killed", batch_size=4, shard_tokens=16)
    assert resumed.complete and not list((tmp_path / "killed").glob(".*.tmp"))
    assert [s["first_sequence"] for s in resumed.manifest["shards"]] == [0, 2, 4, 6, 8]
    for i in range(5):
        torch.testing.assert_close(resumed.load_shard(i)[HOOKS[0]], full.load_shard(i)[HOOKS[0]])
    with pytest.raises(CheckpointError, match="fresh directory"):
        harvest_activations(tiny_gpt2_model, tokens[:5], HOOKS[:1], tmp_path / "killed")


def test_shuffled_batches_cover_every_row_once(tiny_gpt2_model, tokens, tmp_path):
    store = harvest_activations(tiny_gpt2_model, tokens, HOOKS, tmp_path, batch_size=5, shard_tokens=16)
    batches = list(store.batches(batch_size=16, shuffle_buffer_tokens=40, seed=1))
    assert len(batches) == 5 and all(b[HOOKS[0]].shape == (16, 64) for b in batches)
    rows = torch.cat([b[HOOKS[0]] for b in batches])
    every = torch.cat([store.load_shard(i)[HOOKS[0]] for i in range(len(store.manifest["shards"]))])
    key = lambda t: sorted(map(tuple, t[:, :3].tolist()))  # noqa: E731
    assert key(rows) == key(every)
    assert not torch.equal(rows, every)  # actually shuffled
    # hooks stay aligned row by row: both hooks of one row come from the same token
    z_every = torch.cat([store.load_shard(i)[HOOKS[1]] for i in range(len(store.manifest["shards"]))])
    first = batches[0]
    j = int((every == first[HOOKS[0]][0]).all(-1).nonzero()[0])
    torch.testing.assert_close(first[HOOKS[1]][0], z_every[j])
    # two ranks split each global batch
    r0 = list(store.batches(batch_size=16, shuffle_buffer_tokens=40, seed=1, rank=0, world_size=2))
    r1 = list(store.batches(batch_size=16, shuffle_buffer_tokens=40, seed=1, rank=1, world_size=2))
    torch.testing.assert_close(torch.cat([r0[0][HOOKS[0]], r1[0][HOOKS[0]]]), first[HOOKS[0]])


def test_stream_from_model_without_disk(tiny_gpt2_model, tokens):
    out = list(stream_activations(tiny_gpt2_model, tokens.split(2), HOOKS[:1], batch_size=20, shuffle_buffer_tokens=40))
    assert sum(b[HOOKS[0]].shape[0] for b in out) == 80


def test_shuffle_buffer_is_seeded():
    chunks = [{"a": torch.arange(10.0)[:, None] + 10 * i} for i in range(5)]
    a = [b["a"] for b in ShuffleBuffer(20, 5, seed=3)(chunks)]
    b = [b["a"] for b in ShuffleBuffer(20, 5, seed=3)(chunks)]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=False)) and len(a) == 10


def test_missing_store_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="harvest"):
        ActivationStore(tmp_path)
