"""The options every command shares (cli/common.py): one loader, validated --device and --dtype, offline --html."""

from __future__ import annotations

import pytest
import torch
import typer
from typer.testing import CliRunner

from mechscope.cli import app
from mechscope.cli.common import check_device, check_dtype, default_model_spec, load_model
from mechscope.errors import InputError
from mechscope.report.figures import plotly_js

runner = CliRunner()


def _commands(group, prefix: str = ""):
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):  # a group (typer vendors its own click)
            yield from _commands(cmd, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", cmd


def test_every_command_that_loads_a_model_takes_device_and_dtype_with_the_same_defaults():
    commands = dict(_commands(typer.main.get_command(app)))
    loading = {name: cmd for name, cmd in commands.items() if any(p.name == "model" for p in cmd.params)}
    assert {"info", "report", "heads", "attention", "lens logit", "patch grid", "sae train", "geometry norms"} <= set(loading)
    for name, cmd in loading.items():
        params = {p.name: p for p in cmd.params}
        assert "device" in params and "dtype" in params, name
        assert params["device"].default == "cpu" and params["dtype"].default == "float32", name
        assert params["model"].default is None, name  # None: the shipped organism
    with_html = [name for name, cmd in commands.items() if any(p.name == "html_path" for p in cmd.params)]
    assert len(with_html) >= 10


def test_device_is_validated():
    assert check_device("cpu") == "cpu"
    for bad in ("floppy", "cuda:x", "meta"):
        with pytest.raises(InputError, match="--device"):
            check_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA device"):
            check_device("cuda")
    with pytest.raises(InputError, match="cuda"):
        check_device("cuda:99")


def test_dtype_is_validated_and_reaches_the_weights():
    with pytest.raises(InputError, match="float32, bfloat16, float16"):
        check_dtype("float64")
    model = load_model(None, "cpu", "bfloat16")
    assert model.spec == default_model_spec()
    assert {p.dtype for p in model.hf_model.parameters()} == {torch.bfloat16}


def test_a_bad_device_fails_before_the_model_loads(tmp_path):
    for args in (["info", "/nonexistent/model", "--device", "cuda:99"],
                 ["report", "/nonexistent/model", "--device", "floppy", "--out", str(tmp_path / "r.html")],
                 ["heads", "--dtype", "int8"]):
        result = runner.invoke(app, args)
        assert isinstance(result.exception, InputError), (args, result.exception)
    assert not (tmp_path / "r.html").exists()


def test_heads_half_len_beyond_the_context_is_an_error_not_a_silent_clamp():
    result = runner.invoke(app, ["heads", "--half-len", "500", "--n-sequences", "2"])
    assert isinstance(result.exception, InputError)
    n_ctx = load_model(None).cfg.n_ctx
    assert f"1..{(n_ctx - 1) // 2}" in str(result.exception)


def test_heads_html_is_self_contained(tmp_path):
    out = tmp_path / "heads.html"
    result = runner.invoke(app, ["heads", "--n-sequences", "2", "--half-len", "8", "--detector", "induction",
                                 "--html", str(out)])
    assert result.exit_code == 0, (result.output, result.exception)
    page = out.read_text()
    assert plotly_js() in page and "<script src" not in page and "cdn" not in page.replace(plotly_js(), "")
    assert page.count("<div class='figure'") >= 1
