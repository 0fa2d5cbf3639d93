"""CLI: `mechscope circuit discover|evaluate|curve` with --json, --graph and self-contained --html."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from mechscope.errors import InputError


@pytest.fixture(scope="module")
def app():
    from mechscope.cli import app

    return app


def _run(app, *args):
    res = CliRunner().invoke(app, ["circuit", *args, "--n-prompts", "8"])
    return res


def test_discover_then_evaluate_the_written_graph(app, tmp_path):
    out, graph, html = tmp_path / "d.json", tmp_path / "g.json", tmp_path / "d.html"
    res = _run(app, "discover", "--method", "eap", "--top", "6", "--json", str(out), "--graph", str(graph),
               "--html", str(html))
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert len(data["edges"]) == 105 and len(data["circuit"]) == 6
    eapig = json.loads(graph.read_text())
    assert eapig["cfg"]["n_layers"] == 4 and any(k.endswith("<q>") for k in eapig["edges"])
    page = html.read_text()
    assert "Plotly" in page and not re.search(r"<script[^>]+src=", page)
    ev = tmp_path / "e.json"
    res = _run(app, "evaluate", "--circuit", str(graph), "--json", str(ev))
    assert res.exit_code == 0, res.output
    result = json.loads(ev.read_text())
    assert result["n_edges"] == 6 and sorted(result["edges"]) == sorted(data["circuit"])


def test_curve_json_and_errors(app, tmp_path):
    out = tmp_path / "c.json"
    res = _run(app, "curve", "--method", "eap", "--ablation", "mean", "--json", str(out))
    assert res.exit_code == 0, res.output
    curve = json.loads(out.read_text())["curve"]
    assert curve["n_edges"][0] == 0 and curve["faithfulness"][-1] == pytest.approx(1.0, abs=1e-4)
    bad = _run(app, "discover", "--method", "acdc", "--tau", "0")
    assert isinstance(bad.exception, InputError) and "tau" in str(bad.exception)
    bad = _run(app, "curve", "--ablation", "resample")
    assert isinstance(bad.exception, InputError) and "ablation" in str(bad.exception)


def test_qkv_discover_writes_split_edges_that_evaluate_reads_back(app, tmp_path):
    out, graph, html = tmp_path / "d.json", tmp_path / "g.json", tmp_path / "d.html"
    res = _run(app, "discover", "--qkv", "--method", "eap", "--top", "7", "--json", str(out), "--graph", str(graph),
               "--html", str(html))
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["graph"]["qkv"] and len(data["circuit"]) == 7
    assert all(re.search(r"->(a\d+\.h\d+<[qkv]>|m\d+|logits)$", e) for e in data["edges"])
    ev = tmp_path / "e.json"
    res = _run(app, "evaluate", "--qkv", "--circuit", str(graph), "--json", str(ev))
    assert res.exit_code == 0, res.output
    assert sorted(json.loads(ev.read_text())["edges"]) == sorted(data["circuit"])
