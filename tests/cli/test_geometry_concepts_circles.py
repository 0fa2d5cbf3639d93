"""`mechscope geometry concept|steer|circle` end to end on the default organism: JSON, offline HTML, bad input."""

import json

from typer.testing import CliRunner

from mechscope.cli import app
from mechscope.errors import InputError
from mechscope.report.figures import plotly_js

runner = CliRunner()
MODEL = "organism:tiny-gpt2"


def _run(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def test_concept_steer_and_circle_write_json_and_self_contained_html(tmp_path):
    _run(["geometry", "concept", MODEL, "--json", str(tmp_path / "c.json"), "--html", str(tmp_path / "c.html")])
    data = json.loads((tmp_path / "c.json").read_text())
    assert "singular→plural" in data["names"] and len(data["cos_causal"]) == len(data["names"])
    out = _run(["geometry", "steer", MODEL, "--concept", "lower→capitalised", "--alpha", "-0.5", "--alpha", "0",
                "--alpha", "0.5", "--json", str(tmp_path / "s.json"), "--html", str(tmp_path / "s.html")])
    steer = json.loads((tmp_path / "s.json").read_text())
    assert steer["alphas"] == [-0.5, 0.0, 0.5] and steer["slope"] > 0, out.output
    _run(["geometry", "circle", MODEL, "--token", "answer", "--json", str(tmp_path / "d.json"), "--html", str(tmp_path / "d.html")])
    circle = json.loads((tmp_path / "d.json").read_text())
    assert circle["period"] == 7 and circle["task_accuracy"] == 1.0 and len(circle["r2"]) == len(circle["hooks"])
    for name in ("c", "s", "d"):
        page = (tmp_path / f"{name}.html").read_text()
        assert plotly_js() in page and "<script src" not in page


def test_bad_word_pairs_are_clear_errors(tmp_path):
    pairs = tmp_path / "plural.txt"
    pairs.write_text("apple\tapples\nbird\tbirds\nzyzzogeton\tzyzzogetons\n")
    result = runner.invoke(app, ["geometry", "concept", MODEL, "--pairs", str(pairs)])
    assert isinstance(result.exception, InputError) and "zyzzogeton" in str(result.exception)
    pairs.write_text("apple\tapples\nbird\tbirds\n")
    result = runner.invoke(app, ["geometry", "concept", MODEL, "--pairs", str(pairs)])
    assert isinstance(result.exception, InputError) and "at least 3" in str(result.exception)
    pairs.write_text("apple apples extra\n")
    result = runner.invoke(app, ["geometry", "concept", MODEL, "--pairs", str(pairs)])
    assert isinstance(result.exception, InputError) and "two words" in str(result.exception)
