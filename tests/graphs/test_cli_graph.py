"""`mechscope graph PROMPT` end to end: train transcoders, save them, write JSON + HTML; a second run
from the saved transcoders writes the same graph."""

import json

from typer.testing import CliRunner

from mechscope.cli import app


def test_graph_command_trains_saves_and_reloads(tmp_path):
    runner = CliRunner()
    args = ["graph", "Once upon a time there was", "--model", "organism:tiny-gpt2"]
    first = runner.invoke(app, [*args, "--train-steps", "20", "--save-transcoders", str(tmp_path / "tc"),
                                "--json", str(tmp_path / "a.json"), "--html", str(tmp_path / "a.html")])
    assert first.exit_code == 0, first.output
    data = json.loads((tmp_path / "a.json").read_text())
    assert data["nodes"] and data["links"] and data["metadata"]["prompt"] == "Once upon a time there was"
    assert "Plotly.newPlot" in (tmp_path / "a.html").read_text()
    assert sorted(p.name for p in (tmp_path / "tc").iterdir()) == ["L0", "L1", "L2", "L3"]
    second = runner.invoke(app, [*args, "--transcoders", str(tmp_path / "tc"), "--json", str(tmp_path / "b.json")])
    assert second.exit_code == 0, second.output
    assert json.loads((tmp_path / "b.json").read_text()) == data


def test_graph_command_says_what_to_do_with_an_empty_transcoder_folder(tmp_path):
    result = CliRunner().invoke(app, ["graph", "hi", "--model", "organism:tiny-gpt2", "--transcoders", str(tmp_path)])
    assert result.exit_code != 0
    assert "save_transcoders" in str(result.exception) + result.output


def test_graph_through_a_cross_layer_transcoder_trained_by_sae_train(tmp_path):
    runner = CliRunner()
    hooks = [arg for layer in range(4) for arg in ("--hook", f"blocks.{layer}.ln2.hook_normalized")]
    trained = runner.invoke(app, ["sae", "train", "organism:tiny-gpt2", "--kind", "clt", "--out", str(tmp_path),
                                  "--steps", "20", "--batch", "128", "--seq-len", "16", "--n-sequences", "16",
                                  "--expansion", "2", "--k", "4", *hooks])
    assert trained.exit_code == 0, trained.output + str(trained.exception)
    result = runner.invoke(app, ["graph", "Once upon a time there was", "--model", "organism:tiny-gpt2",
                                 "--transcoders", str(tmp_path / "clt_topk"), "--json", str(tmp_path / "g.json"),
                                 "--max-feature-nodes", "30"])
    assert result.exit_code == 0, result.output + str(result.exception)
    data = json.loads((tmp_path / "g.json").read_text())
    layers = {n["layer"] for n in data["nodes"] if n.get("feature_type") == "cross layer transcoder"}
    assert data["links"] and layers, {n.get("feature_type") for n in data["nodes"]}
    assert 0 < sum(n.get("feature_type") == "cross layer transcoder" for n in data["nodes"]) <= 30
