"""Activation patching grids under torchrun: 2 gloo ranks on disjoint prompts give the 1-process grid."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("patching_worker.py")
REPO = Path(__file__).resolve().parents[2]


def _run(out: Path, ranks: int) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}", "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    launcher = [sys.executable] if ranks == 1 else [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                    f"--nproc-per-node={ranks}"]
    proc = subprocess.run([*launcher, str(WORKER), str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.slow
def test_two_ranks_patch_the_one_rank_grid(tmp_path):
    one, two = _run(tmp_path / "one.json", 1), _run(tmp_path / "two.json", 2)
    for site in ("resid_pre", "z"):
        a, b = one[site], two[site]
        assert a["n_prompts"] == b["n_prompts"] == 10 and a["pos_labels"] == b["pos_labels"]
        assert b["clean"] == pytest.approx(a["clean"], rel=1e-5) and b["corrupt"] == pytest.approx(a["corrupt"], rel=1e-5)
        assert max(abs(x) for x in a["values"]) > 0.05                     # the grid is not trivially zero
        assert b["values"] == pytest.approx(a["values"], abs=1e-5), site
