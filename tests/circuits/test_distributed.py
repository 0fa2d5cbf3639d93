"""Scale-out: under torchrun, 2 ranks on gloo with disjoint prompts give the 1-process scores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("ddp_worker.py")
REPO = Path(__file__).resolve().parents[2]


def _run(out: Path, ranks: int) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}", "OMP_NUM_THREADS": "1"}
    if ranks == 1:
        cmd = [sys.executable, str(WORKER), str(out)]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}",
               str(WORKER), str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.slow
def test_two_ranks_equal_one(tmp_path):
    one = _run(tmp_path / "one.json", 1)
    two = _run(tmp_path / "two.json", 2)
    for ablation in ("patching", "mean"):
        a, b = one[ablation], two[ablation]
        assert b["n_total"] == a["n_total"] == 12 and b["n_prompts"] == 6
        for key in ("eap_ig", "exact", "curve", "acdc"):
            scale = max(abs(x) for x in a[key]) or 1.0
            assert max(abs(x - y) for x, y in zip(a[key], b[key], strict=True)) <= 1e-5 * scale, (ablation, key)
