"""`mechscope sae ...` end to end on the real stories260K (tiny): harvest, train, eval, dashboard."""

import json

import pytest
from typer.testing import CliRunner

from mechscope.cli import app
from tests.helpers import STORIES260K


@pytest.fixture(scope="module")
def model_dir():
    if not STORIES260K.exists():
        pytest.skip("stories260K not available")
    return str(STORIES260K)


def test_train_eval_dashboard(model_dir, tmp_path):
    runner = CliRunner()
    hook = "blocks.1.hook_resid_post"
    common = ["--seq-len", "16", "--n-sequences", "8"]
    res = runner.invoke(app, ["sae", "train", model_dir, "--hook", hook, "--arch", "topk", "--arch", "relu_l1",
                              "--k", "4", "--expansion", "2", "--steps", "6", "--batch", "32",
                              "--store", str(tmp_path / "store"), "--out", str(tmp_path / "saes"),
                              "--json", str(tmp_path / "train.json"), *common])
    assert res.exit_code == 0, res.output + repr(res.exception)
    hist = json.loads((tmp_path / "train.json").read_text())
    assert set(hist["metrics"]) == {f"topk@{hook}", f"relu_l1@{hook}"}
    sae_dir = tmp_path / "saes" / f"topk@{hook}"
    assert (sae_dir / "cfg.json").exists() and (tmp_path / "store" / "manifest.json").exists()

    res = runner.invoke(app, ["sae", "eval", str(sae_dir), "--model", model_dir, "--json", str(tmp_path / "e.json"), *common])
    assert res.exit_code == 0, res.output + repr(res.exception)
    ev = json.loads((tmp_path / "e.json").read_text())
    assert ev["hook_name"] == hook and ev["l0"] <= 4 and "ce_loss_recovered" in ev

    res = runner.invoke(app, ["sae", "dashboard", str(sae_dir), "--model", model_dir, "--latents", "0,1",
                              "--out", str(tmp_path / "d.html"), "--json", str(tmp_path / "d.json"), *common])
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert (tmp_path / "d.html").read_text().startswith("<!doctype html>")
    assert [c["latent"] for c in json.loads((tmp_path / "d.json").read_text())["cards"]] == [0, 1]


def test_train_leaves_the_process_group_even_when_training_fails(tmp_path, monkeypatch):
    """ddp.shutdown() runs in a finally: a failing run under torchrun must not leave gloo threads behind."""
    from mechscope import distributed as ddp
    from mechscope.errors import HookNameError

    calls = []
    monkeypatch.setattr(ddp, "shutdown", lambda: calls.append("shutdown"))
    res = CliRunner().invoke(app, ["sae", "train", "--hook", "blocks.99.hook_resid_post", "--steps", "1",
                                   "--seq-len", "16", "--n-sequences", "2", "--out", str(tmp_path / "saes")])
    assert isinstance(res.exception, HookNameError), res.exception
    assert calls == ["shutdown"]
