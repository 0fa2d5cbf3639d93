"""`mechscope tms ...` on tiny settings: the page and the JSON are written and hold the numbers."""

import json

import typer
from typer.testing import CliRunner

from mechscope.cli import toy as toy_cli


def app() -> typer.Typer:
    a = typer.Typer()
    a.command("noop")(lambda: None)  # a second command keeps `tms` a sub-command
    toy_cli.register(a)
    return a


def test_sweep_writes_page_and_json(tmp_path):
    out, js = tmp_path / "tms.html", tmp_path / "tms.json"
    res = CliRunner().invoke(app(), ["tms", "sweep", "--features", "5", "--hidden", "2", "--sparsities", "3",
                                     "--replicas", "2", "--steps", "60", "--batch", "64", "--threads", "1",
                                     "--out", str(out), "--json", str(js)])
    assert res.exit_code == 0, res.output
    page = out.read_text()
    assert page.startswith("<!doctype html>") and "plotly" in page.lower()
    assert page.count("<div class='figure'") == 3               # geometry, dimensionality, loss
    data = json.loads(js.read_text())
    assert len(data["sweep"]["dims_per_feature"]) == 3
    assert len(data["geometry"]["shapes"]) == 3
    assert data["config"]["n_instances"] == 6


def test_phase_and_abs_commands(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app(), ["tms", "phase", "--grid", "2", "--replicas", "1", "--steps", "40", "--threads", "1",
                                "--out", str(tmp_path / "p.html"), "--json", str(tmp_path / "p.json")])
    assert res.exit_code == 0, res.output
    assert len(json.loads((tmp_path / "p.json").read_text())["diagram"]["phase"]) == 2
    res = runner.invoke(app(), ["tms", "abs", "--features", "4", "--neurons", "2", "--sparsities", "2",
                                "--steps", "20", "--threads", "1", "--out", str(tmp_path / "a.html"),
                                "--json", str(tmp_path / "a.json")])
    assert res.exit_code == 0, res.output
    assert len(json.loads((tmp_path / "a.json").read_text())["result"]["features_computed"]) == 2


def test_bad_option_is_a_clear_error(tmp_path):
    from mechscope.errors import InputError

    res = CliRunner().invoke(app(), ["tms", "sweep", "--activation", "gelu", "--steps", "1",
                                     "--out", str(tmp_path / "x.html")])
    assert isinstance(res.exception, InputError) and "activation" in str(res.exception)
