"""mechscope.distributed in one process: the split helpers are exact partitions, and every collective
is the identity (the 2-rank runs are in test_report_ranks.py and the analyses' own ddp tests)."""

from __future__ import annotations

import math

import torch

from mechscope import distributed as ddp


def test_balanced_split_is_a_partition_with_close_loads():
    costs = [9.0, 1.0, 1.0, 4.0, 3.0, 2.0, 2.0, 0.5, float("nan"), -1.0]
    parts = ddp.balanced_split(costs, 3)
    assert sorted(i for p in parts for i in p) == list(range(len(costs)))   # every index exactly once
    assert all(p == sorted(p) for p in parts)
    clean = [c if math.isfinite(c) and c >= 0 else 0.0 for c in costs]
    loads = sorted(sum(clean[i] for i in p) for p in parts)
    assert loads == [6.5, 7.0, 9.0]    # LPT by hand: 9 | 4 2 1 | 3 2 1 0.5 (the largest job bounds the best split)
    assert ddp.balanced_split(costs, 3) == parts                # deterministic: every rank computes the same
    assert ddp.balanced_split([], 2) == [[], []]
    assert ddp.balanced_split([1.0, 1.0], 4) == [[0], [1], [], []]


def test_one_process_collectives_are_identities():
    x = torch.arange(6.0).view(2, 3)
    assert not ddp.is_distributed() and ddp.rank() == 0 and ddp.world_size() == 1
    assert ddp.shard([1, 2, 3]) == [1, 2, 3]
    assert torch.equal(ddp.all_reduce_sum(x), x) and torch.equal(ddp.all_gather_cat(x), x)
    assert ddp.gather_objects({"a": 1}) == [{"a": 1}] and ddp.broadcast_object("b") == "b"
