"""`mechscope lens ...` and `mechscope geometry ...` end to end on stories260K, with --json output."""

import json

import pytest
from typer.testing import CliRunner

from mechscope.cli import app
from mechscope.errors import NotApplicableError
from mechscope.report.figures import plotly_js
from tests.helpers import STORIES260K

runner = CliRunner()
SMALL = ["--n-sequences", "2", "--seq-len", "16"]


@pytest.fixture(autouse=True)
def _needs_stories():
    if not STORIES260K.exists():
        pytest.skip(f"stories260K not found at {STORIES260K}")


def _run(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def test_lens_commands(tmp_path):
    model = str(STORIES260K)
    _run(["lens", "logit", model, *SMALL, "--json", str(tmp_path / "ll.json"), "--html", str(tmp_path / "ll.html")])
    data = json.loads((tmp_path / "ll.json").read_text())
    assert data["layer_labels"][0] == "embed" and len(data["ce"]) == 6
    page = (tmp_path / "ll.html").read_text()
    assert plotly_js() in page and page.count("<div class='figure'") == 1  # offline: plotly inlined
    assert "cdn" not in page.replace(plotly_js(), "") and "<script src" not in page

    lens_dir = tmp_path / "lens"
    _run(["lens", "tuned-train", model, "--out", str(lens_dir), "--steps", "3", *SMALL])
    out = _run(["lens", "tuned-train", model, "--out", str(lens_dir), "--steps", "5", *SMALL,
                "--json", str(tmp_path / "train.json")])
    assert json.loads((tmp_path / "train.json").read_text())["resumed_from"] == 3, out.output
    _run(["lens", "tuned-compare", str(lens_dir), "--model", model, *SMALL, "--json", str(tmp_path / "cmp.json")])
    assert len(json.loads((tmp_path / "cmp.json").read_text())["tuned_kl"]) == 6

    _run(["lens", "remove-norms", model, "--steps", "2", *SMALL, "--out", str(tmp_path / "nf"),
          "--json", str(tmp_path / "nf.json")])
    assert (tmp_path / "nf" / "frozen_norms.json").exists()
    assert json.loads((tmp_path / "nf.json").read_text())["checkpoint"] == str(tmp_path / "nf")


def test_geometry_commands(tmp_path):
    model = str(STORIES260K)
    for command in ("norms", "dilution", "layer-robustness"):
        _run(["geometry", command, model, *SMALL, "--json", str(tmp_path / f"{command}.json")])
        assert json.loads((tmp_path / f"{command}.json").read_text())
    _run(["geometry", "token-embeddings", model, "--query", " the", "--json", str(tmp_path / "tok.json")])
    assert " the" in json.loads((tmp_path / "tok.json").read_text())["neighbours"]
    result = runner.invoke(app, ["geometry", "positional", model])
    assert isinstance(result.exception, NotApplicableError) and "rotary" in str(result.exception)
