"""`mechscope report` under torchrun: 2 gloo ranks split the claims and rank 0 writes one report whose
verdicts, metrics, figures and HTML equal a 1-process run apart from timings (and the rank count)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.helpers import run_on_ranks

CLAIMS = "C02,C05,C09,C12,C17"    # fast claims; C09 and C02 run a null twin on each rank; C12's patching grid
                                  # would all-reduce across ranks if the claims did not run rank-locally


def _report(tmp: Path, ranks: int, workers: int = 1) -> tuple[dict, str, str]:
    out, js = tmp / f"r{ranks}-w{workers}.html", tmp / f"r{ranks}-w{workers}.json"
    proc = run_on_ranks(["-m", "mechscope", "report", "organism:tiny-gpt2", "--claims", CLAIMS, "--out", out,
                         "--json", js, "--workers", workers], ranks, timeout=600, cwd=tmp,
                        env={"MECHSCOPE_PROGRESS": "0"})
    return json.loads(js.read_text()), out.read_text(), proc.stderr


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    return _report(tmp_path_factory.mktemp("one"), 1)


def _same_report(one, page_one, two, page_two):
    assert two["run"]["ranks"] == 2 and one["run"]["ranks"] == 1
    for a, b in zip(one["claims"], two["claims"], strict=True):
        assert (a["id"], a["verdict"], a["metrics"], a["null_metrics"]) == (b["id"], b["verdict"], b["metrics"],
                                                                           b["null_metrics"])
    assert [c["verdict"] for c in one["claims"]].count("error") == 0
    assert _without_timings(page_two) == _without_timings(page_one)


def _without_timings(page: str) -> str:
    page = re.sub(r"started [^,]+, [0-9.]+ s\.", "started T, S s.", page)
    page = re.sub(r" · [0-9.]+ s( \(twin [0-9.]+ s\))?", " · S s", page)
    return re.sub(r"<span class=\"k\">(started_utc|seconds|estimated_seconds|ranks)</span> <span class=\"v mono\">"
                  r"[^<]*</span>", r"<span class='k'>\1</span>", page)


@pytest.mark.slow
def test_two_ranks_write_the_one_rank_report(tmp_path, one_process):
    two, page_two, log = _report(tmp_path, 2)
    assert "rank 1 " in log and "rank 0 " in log                      # both ranks ran claims
    assert not (tmp_path / "r2-w1.html.tmp").exists()
    _same_report(*one_process[:2], two, page_two)


@pytest.mark.slow
def test_workers_start_the_ranks_themselves(tmp_path, one_process):
    """`--workers 2` from a plain process: the same two ranks torchrun would start, the same report."""
    two, page_two, log = _report(tmp_path, 1, workers=2)
    assert "rank 1 " in log and "rank 0 " in log
    _same_report(*one_process[:2], two, page_two)


def test_ranks_take_the_longest_estimated_claim_next_and_each_claim_once():
    """Two ranks sharing one counter take the queue longest first, whoever asks; without a store each rank
    runs its up-front share, longest first."""
    from mechscope.claims import ranks
    from mechscope.claims.registry import discover, select

    chosen = select(discover(), ["C01", "C02", "C03", "C04", "C05"])
    costs = {"C01": 10.0, "C02": 1.0, "C03": 4.0, "C04": 5.0, "C05": float("nan")}

    class Store:   # the one operation the queue uses: an atomic add that returns the new value
        def __init__(self):
            self.values = {}

        def add(self, key, amount):
            self.values[key] = self.values.get(key, 0) + amount
            return self.values[key]

    store = Store()
    rank0, rank1 = (ranks._taken(chosen, costs, r, 2, store) for r in (0, 1))
    order = [next(rank0).id, next(rank1).id, next(rank1).id, next(rank0).id, next(rank1).id]
    assert order == ["C01", "C04", "C03", "C02", "C05"]                 # NaN counts as 0: last
    assert list(rank0) == [] and list(rank1) == []
    shares = [[s.id for s in ranks._taken(chosen, costs, r, 2, None)] for r in (0, 1)]
    assert shares == [["C01", "C05"], ["C04", "C03", "C02"]]


def test_the_split_balances_the_estimate():
    from mechscope.claims.ranks import split_claims

    ids = ["C01", "C02", "C03", "C04", "C05"]
    parts = split_claims(ids, {"C01": 10.0, "C02": 1.0, "C03": 4.0, "C04": 5.0, "C05": 0.5}, 2)
    assert sorted(sum(parts, [])) == ids
    assert parts == [["C01", "C05"], ["C02", "C03", "C04"]]         # 10 + 0.5 | 5 + 4 + 1 (a tie goes to rank 0)
