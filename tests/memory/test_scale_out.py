"""Two gloo ranks under torchrun give the same E[kkᵀ] and tracing summary as one process."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.helpers import run_on_ranks

HERE = Path(__file__).resolve().parent


@pytest.mark.slow   # two torchrun processes each load torch and the organism: ~30 s idle, minutes when loaded
def test_two_ranks_equal_one(tmp_path, monkeypatch):
    sys.path.insert(0, str(HERE))
    try:
        import scale_worker
    finally:
        sys.path.remove(str(HERE))
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    scale_worker.main(str(tmp_path / "one.safetensors"))
    one = load_file(str(tmp_path / "one.safetensors"))
    run_on_ranks([HERE / "scale_worker.py", tmp_path / "two.safetensors"], 2)
    two = load_file(str(tmp_path / "two.safetensors"))
    assert set(one) == set(two)
    for k in ("cov1", "cov2"):
        torch.testing.assert_close(two[k], one[k], rtol=1e-12, atol=1e-15)
    for k in one:
        torch.testing.assert_close(two[k], one[k], rtol=1e-6, atol=1e-7, equal_nan=True, msg=k)
    assert float(one["p"][2]) == 6 and float(one["p"][0]) > 0.9       # all six facts counted, recalled
