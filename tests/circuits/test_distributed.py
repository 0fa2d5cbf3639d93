"""Scale-out: under torchrun, 2 ranks on gloo with disjoint prompts give the 1-process scores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import run_on_ranks

WORKER = Path(__file__).with_name("ddp_worker.py")


def _run(out: Path, ranks: int) -> dict:
    run_on_ranks([WORKER, out], ranks)
    return json.loads(out.read_text())


@pytest.mark.slow
def test_two_ranks_equal_one(tmp_path):
    one = _run(tmp_path / "one.json", 1)
    two = _run(tmp_path / "two.json", 2)
    for ablation in ("patching", "mean"):
        a, b = one[ablation], two[ablation]
        assert b["n_total"] == a["n_total"] == 12 and b["n_prompts"] == 6
        for key in ("eap_ig", "exact", "curve", "acdc") + (("exact_denoising",) if ablation == "patching" else ()):
            scale = max(abs(x) for x in a[key]) or 1.0
            assert max(abs(x - y) for x, y in zip(a[key], b[key], strict=True)) <= 1e-5 * scale, (ablation, key)
