"""`mechscope memory trace|edit|neurons` end to end on the shipped organism."""

from __future__ import annotations

import json

import torch
from typer.testing import CliRunner

from mechscope.cli import app

runner = CliRunner()
FACT = ["--prompt", "The color of the blagri is", "--subject", "blagri"]


def _run(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def test_trace_one_prompt_and_many_facts(tmp_path):
    out = _run(["memory", "trace", *FACT, "--samples", "2", "--json", str(tmp_path / "t.json"),
                "--html", str(tmp_path / "t.html")])
    assert "P(' gold')" in out.output
    data = json.loads((tmp_path / "t.json").read_text())
    assert set(data["indirect_effect"]) == {"resid", "mlp", "attn"}
    html = (tmp_path / "t.html").read_text()
    assert '<script src="http' not in html and len(html) > 1_000_000  # plotly.js inlined, no CDN script
    out = _run(["memory", "trace", "--n-facts", "2", "--samples", "2", "--kinds", "mlp"])
    assert "mean indirect effect over 2 facts" in out.output


def test_edit_saves_a_new_checkpoint_and_leaves_the_model_alone(tmp_path):
    import mechscope
    from mechscope.cli.common import default_model_spec

    before = mechscope.load(default_model_spec()).W_out.clone()
    _run(["memory", "edit", *FACT, "--target", " red", "--layers", "1", "--cov-tokens", "2048",
          "--save", str(tmp_path / "edited"), "--json", str(tmp_path / "e.json")])
    edited = mechscope.load(str(tmp_path / "edited"))
    assert not torch.equal(edited.W_out[1], before[1]) and torch.equal(edited.W_out[0], before[0])
    assert torch.equal(mechscope.load(default_model_spec()).W_out, before)
    data = json.loads((tmp_path / "e.json").read_text())
    assert data["method"] == "ROME" and data["delta_ranks"] == {"1": 1} and "efficacy" in data["metrics"]


def test_bad_input_is_one_line(tmp_path):
    result = runner.invoke(app, ["memory", "edit", "--prompt", "The color of the blagri is", "--subject", "zorp",
                                 "--target", " red", "--layers", "1", "--cov-tokens", "1024"])
    assert result.exit_code != 0
    result = runner.invoke(app, ["memory", "edit", *FACT, "--target", " red", "--layers", "9"])
    assert result.exit_code != 0 and "out of range" in str(result.exception)


def test_neurons(tmp_path):
    out = _run(["memory", "neurons", "--layer", "2", "--units", "5,6", "-k", "2", "--n-sequences", "2",
                "--seq-len", "16", "--json", str(tmp_path / "n.json")])
    assert "value promotes" in out.output
    assert json.loads((tmp_path / "n.json").read_text())["labels"] == ["unit 5", "unit 6", "set"]


def test_rome_auto_layers_on_the_compiled_memory_organism():
    out = _run(["memory", "edit", "organism:compiled-memory", "--n-facts", "4", "--layers", "auto", "--position",
                "last", "--damping", "1e-3", "--cov-tokens", "1024", "--prefixes", "0", "--stop-loss", "0.3"])
    assert "efficacy               1.0000" in out.output and "neighbourhood          1.0000" in out.output
    bad = runner.invoke(app, ["memory", "edit", "organism:compiled-memory", "--n-facts", "2", "--layers", "1",
                              "--cov-tokens", "1024"])
    assert bad.exit_code != 0 and "singular" in str(bad.exception)
