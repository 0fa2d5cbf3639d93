import json

from typer.testing import CliRunner

from mechscope.cli import app


def test_list_and_eval_commands(micro_run, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["organism", "list", "--json", str(tmp_path / "list.json")])
    assert res.exit_code == 0, res.output
    listed = json.loads((tmp_path / "list.json").read_text())
    assert listed["default"] == "tiny-llama" and listed["default"] in listed["shipped"] and "(default)" in res.output
    assert "tiny-gpt2" in listed["presets"] and "compiled-induction" in listed["compiled"]
    assert listed["planted"]["compiled-boolean"]["claims"] == ["C15"]
    assert "C10" in listed["planted"]["tiny-gpt2"]["claims"] and "C09" not in listed["planted"]["tiny-gpt2"]["claims"]
    assert "C09" in listed["planted"]["induction-2l"]["claims"]
    assert "IOI answer head a3.h3 (direct effect 2.19, attends IO 0.01, S 0.97)" \
        in listed["planted"]["tiny-llama-base"]["mechanisms"]
    assert "IOI answer head a3.h2 (direct effect 1.50, attends IO 0.95, S 0.03)" \
        in listed["planted"]["tiny-llama"]["mechanisms"]
    assert listed["planted"]["tiny-llama"]["kind"] == "trained + enforced"
    assert listed["planted"]["tiny-llama-base"]["kind"] == "trained"
    assert listed["planted"]["induction-enforced"]["kind"] == "enforced"
    assert listed["planted"]["compiled-induction"]["kind"] == "compiled"
    _, final = micro_run
    res = runner.invoke(app, ["organism", "eval", str(final), "--prompts", "8", "--json", str(tmp_path / "m.json")])
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert 0 <= metrics["ioi_accuracy"] <= 1 and metrics["induction_loss_ratio"] > 0


def test_train_unknown_preset_is_a_clear_error(tmp_path):
    res = CliRunner().invoke(app, ["organism", "train", "nope", "--out", str(tmp_path)])
    assert res.exit_code != 0
    assert "unknown organism preset" in str(res.exception) + res.output
