"""The registry: discovery, the catalogue, and running claims that succeed, fail or do not apply."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from mechscope.claims.base import Budget, ClaimResult
from mechscope.claims.catalogue import CATALOGUE
from mechscope.claims.model_guard import ModelGuard
from mechscope.claims.registry import discover, normalize_id, parse_ids, run_claims, select
from mechscope.errors import InputError

CLAIMS_MD = Path(__file__).resolve().parents[2].parent / "shared" / "CLAIMS.md"


def test_catalogue_matches_claims_md():
    if not CLAIMS_MD.exists():
        pytest.skip(f"{CLAIMS_MD} not found")
    rows = re.findall(r"^\| (C\d\d) ([a-z0-9-]+) \|", CLAIMS_MD.read_text(), flags=re.M)
    assert len(rows) == 21
    assert [(e.id, e.slug) for e in CATALOGUE] == rows


def test_real_package_lists_every_claim_once():
    specs = discover()
    ids = [s.id for s in specs]
    assert ids == sorted(set(ids))
    assert {e.id for e in CATALOGUE} <= set(ids)


def test_fake_package_discovery(fake_claims_package):
    specs = {s.id: s for s in discover(fake_claims_package)}
    assert len(specs) == 22  # 21 catalogue entries + C22 from its module
    assert specs["C01"].module is not None and specs["C01"].entry.slug == "residual-accumulation"
    assert specs["C04"].module is None and "import of c04_fake_broken_import failed" in specs["C04"].import_error
    assert "breaks the claim contract" in specs["C09"].import_error and "verdict" in specs["C09"].import_error
    assert specs["C22"].entry.title == "An extra claim" and specs["C22"].entry.reference == "nobody"
    assert not specs["C08"].implemented


def test_run_claims_records_every_outcome_and_goes_on(fake_claims_package):
    calls = []
    model, twin = SimpleNamespace(value=3.0), SimpleNamespace(value=1.0)
    results = run_claims(model, budget=Budget(seed=3), specs=discover(fake_claims_package), null_twin=twin,
                         on_progress=lambda i, n, spec, res: calls.append((i, n, spec.id, res is None)))
    by_id = {r.id: r for r in results}
    assert [r.id for r in results] == sorted(by_id)
    assert all(isinstance(r, ClaimResult) for r in results)
    assert by_id["C01"].verdict == "supported" and by_id["C01"].model_independent
    assert by_id["C01"].rule == "supported if draw >= 0" and by_id["C01"].title == CATALOGUE[0].title
    assert by_id["C02"].verdict == "error"
    assert "ValueError: boom: shapes differ" in by_id["C02"].error
    assert "c02_fake_boom.py" in by_id["C02"].error  # says where
    assert by_id["C03"].verdict == "not applicable"
    assert "rotary" in by_id["C03"].evidence
    assert by_id["C04"].verdict == "error" and "this_module_does_not_exist" in by_id["C04"].error
    assert by_id["C09"].verdict == "error" and "must define verdict" in by_id["C09"].error
    # the twin claim read the model (3) against the twin (1)
    assert by_id["C07"].verdict == "supported" and by_id["C07"].null_value == 1.0
    assert by_id["C07"].null_metrics == {"value": 1.0} and not by_id["C07"].model_independent
    # a NaN among the numbers a rule reads is an error with the reason, never a verdict
    assert by_id["C22"].verdict == "error" and "value=nan" in by_id["C22"].error
    assert by_id["C06"].verdict == "supported"
    assert {by_id[f"C{i:02d}"].verdict for i in [5, 8, *range(10, 22)]} == {"not implemented"}
    assert by_id["C02"].reference == next(e.reference for e in CATALOGUE if e.id == "C02")
    assert by_id["C22"].reference == "nobody"
    # one "start" and one "done" call per claim, in order
    assert len(calls) == 2 * len(results)
    assert calls[0] == (1, 22, "C01", True) and calls[1] == (1, 22, "C01", False)
    assert calls[-1] == (22, 22, "C22", False)
    assert by_id["C01"].seconds >= 0


def test_the_null_decides_and_a_broken_null_is_an_error(fake_claims_package):
    specs = discover(fake_claims_package)
    same = run_claims(SimpleNamespace(value=1.5), ids=["C07"], specs=specs, null_twin=SimpleNamespace(value=1.0))
    assert same[0].verdict == "not supported"  # 1.5 does not clear the twin's 1.0 by the margin of 1
    nan_twin = run_claims(SimpleNamespace(value=3.0), ids=["C07"], specs=specs,
                          null_twin=SimpleNamespace(value=float("nan")))
    assert nan_twin[0].verdict == "error" and "null twin value=nan" in nan_twin[0].error
    # no twin can be built for a model without an HF config: error that says so, not a verdict
    no_twin = run_claims(SimpleNamespace(value=3.0), ids=["C07"], specs=specs)
    assert no_twin[0].verdict == "error" and "null twin" in no_twin[0].error


def test_each_claim_is_seeded_independently(fake_claims_package):
    specs = discover(fake_claims_package)
    alone = run_claims(None, ids=["C01"], budget=Budget(seed=7), specs=specs)[0].metrics["draw"]
    torch.rand(5)  # disturb the global generator: the claim must not care
    after_others = {r.id: r for r in run_claims(None, budget=Budget(seed=7), specs=specs)}["C01"].metrics["draw"]
    torch.manual_seed(7)
    expected = torch.rand(1).item()
    assert alone == after_others == expected
    other_seed = run_claims(None, ids=["C01"], budget=Budget(seed=8), specs=specs)[0].metrics["draw"]
    assert other_seed != expected


def test_ids_are_normalised_and_checked():
    assert normalize_id(" c9 ") == "C09" and normalize_id("21") == "C21"
    assert parse_ids("C01, c9") == ["C01", "C09"]
    assert parse_ids(None) is None and parse_ids(" ") is None
    specs = discover()
    assert [s.id for s in select(specs, ["C09", "c01"])] == ["C01", "C09"]
    with pytest.raises(InputError, match="C99"):
        select(specs, ["C99"])
    with pytest.raises(InputError, match="C09"):
        normalize_id("induction")


def test_a_claim_that_changes_the_model_is_undone_and_named(fake_claims_package):
    torch.manual_seed(0)
    hf = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2)).eval()
    before = {k: v.clone() for k, v in hf.state_dict().items()}
    model = SimpleNamespace(hf_model=hf)
    results = {r.id: r for r in run_claims(model, ids=["C01", "C06"], specs=discover(fake_claims_package))}
    assert "restored" in results["C06"].error and results["C06"].verdict == "supported"
    assert results["C01"].error is None
    assert not hf.training
    for key, value in hf.state_dict().items():
        assert torch.equal(value, before[key])


def test_the_weight_guard_is_nan_safe():
    """A NaN weight equals itself bit for bit: an untouched NaN model is not blamed, a change still is."""
    hf = torch.nn.Linear(3, 2)
    with torch.no_grad():
        hf.weight[0, 0] = float("nan")
    guard = ModelGuard(SimpleNamespace(hf_model=hf))
    assert guard.check_and_restore() is None
    with torch.no_grad():
        hf.bias[0] += 1
    assert "restored" in guard.check_and_restore()
    assert torch.isnan(hf.weight[0, 0])
