"""Two gloo ranks under torchrun give the same E[kkᵀ] and tracing summary as one process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

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
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(HERE.parents[1] / "src"), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
           str(HERE / "scale_worker.py"), str(tmp_path / "two.safetensors")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = load_file(str(tmp_path / "two.safetensors"))
    assert set(one) == set(two)
    for k in ("cov1", "cov2"):
        torch.testing.assert_close(two[k], one[k], rtol=1e-12, atol=1e-15)
    for k in one:
        torch.testing.assert_close(two[k], one[k], rtol=1e-6, atol=1e-7, equal_nan=True, msg=k)
    assert float(one["p"][2]) == 6 and float(one["p"][0]) > 0.9       # all six facts counted, recalled
