"""CLI: `mechscope heads`, `mechscope attention`, `mechscope patch grid|attribute|path` with --json."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tests.helpers import STORIES260K


@pytest.fixture(scope="module")
def app():
    if not STORIES260K.exists():
        pytest.skip("stories260K not available")
    from mechscope.cli import app

    return app


def test_heads_json(app, tmp_path):
    out = tmp_path / "heads.json"
    res = CliRunner().invoke(app, ["heads", str(STORIES260K), "--n-sequences", "2", "--half-len", "8",
                                   "--json", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert len(data["scores"]["previous-token"]) == 5
    assert "not applicable" in data["notes"]["name-mover"]
    for lagged in ("lookback", "lagged-induction"):
        lags = [lag for row in data["lags"][lagged] for lag in row]
        assert len(data["lags"][lagged]) == 5 and all(1 <= lag <= 8 for lag in lags)
    assert "(lag " in res.output


def test_patch_commands_json(app, tmp_path):
    runner = CliRunner()
    for cmd, extra in (("grid", ["--site", "resid_pre"]), ("attribute", ["--sites", "resid_pre,z", "--compare"]),
                       ("path", [])):
        out = tmp_path / f"{cmd}.json"
        res = runner.invoke(app, ["patch", cmd, str(STORIES260K), "--task", "induction", "--n-prompts", "2",
                                  *extra, "--json", str(out)])
        assert res.exit_code == 0, (cmd, res.output)
        assert json.loads(out.read_text())


def test_attention_viewer_and_not_applicable(app, tmp_path):
    runner = CliRunner()
    out = tmp_path / "a.html"
    res = runner.invoke(app, ["attention", "Once upon a time", "--model", str(STORIES260K), "--out", str(out)])
    assert res.exit_code == 0 and out.read_text().startswith("<!DOCTYPE html>")
    res = runner.invoke(app, ["patch", "grid", str(STORIES260K), "--task", "ioi"])
    assert res.exit_code != 0
