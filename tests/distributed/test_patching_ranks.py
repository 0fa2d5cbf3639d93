"""Activation patching grids under torchrun: 2 gloo ranks on disjoint prompts give the 1-process grid."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import run_on_ranks

WORKER = Path(__file__).with_name("patching_worker.py")


def _run(out: Path, ranks: int) -> dict:
    run_on_ranks([WORKER, out], ranks)
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
