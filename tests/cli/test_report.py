"""`mechscope report` end to end on the real stories260K, with fake claims standing in for the catalogue."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mechscope.claims import registry
from mechscope.cli import app
from mechscope.cli import report as report_cli
from mechscope.errors import InputError
from tests.helpers import STORIES260K

runner = CliRunner()


@pytest.fixture
def fake_discover(fake_claims_package, monkeypatch):
    monkeypatch.setattr(report_cli, "discover", lambda: registry.discover(fake_claims_package))


def test_report_end_to_end(tmp_path, fake_discover):
    if not STORIES260K.exists():
        pytest.skip(f"stories260K not found at {STORIES260K}")
    out, js = tmp_path / "r.html", tmp_path / "r.json"
    result = runner.invoke(app, ["report", str(STORIES260K), "--claims", "C01,c2,C05", "--out", str(out),
                                 "--json", str(js), "--seed", "3"])
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.output.splitlines() if ln.startswith("[")]
    assert [ln.split()[1:3] for ln in lines] == [["C01", "residual-accumulation"], ["C02", "norm-growth"],
                                                 ["C05", "token-embeddings"]]
    assert "ValueError: boom" in result.output  # the error is shown, and the run went on
    data = json.loads(js.read_text())
    assert [(c["id"], c["verdict"]) for c in data["claims"]] == [
        ("C01", "supported"), ("C02", "error"), ("C05", "not implemented")]
    assert data["model"]["arch"] == "llama" and data["model"]["n_layers"] == 5
    assert data["model"]["n_params"] == 260032 and data["model"]["spec"] == str(STORIES260K)
    assert data["run"]["seed"] == 3 and data["run"]["claims_requested"] == ["C01", "C02", "C05"]
    page = out.read_text()
    assert "stories260K" in page and 'id="fig-c01-0"' in page


def test_unknown_claim_fails_before_loading_a_model(tmp_path):
    result = runner.invoke(app, ["report", "/nonexistent/model", "--claims", "C77", "--out", str(tmp_path / "r.html")])
    assert isinstance(result.exception, InputError) and "C77" in str(result.exception)
    assert not (tmp_path / "r.html").exists()


def test_unwritable_output_fails_before_loading_a_model(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = runner.invoke(app, ["report", "/nonexistent/model", "--out", str(blocker / "r.html")])
    assert isinstance(result.exception, InputError) and "--out" in str(result.exception)


def test_workers_are_for_cpu_and_not_under_torchrun(tmp_path, monkeypatch):
    out = str(tmp_path / "r.html")
    (tmp_path / "a-file").write_text("")
    result = runner.invoke(app, ["report", "/nonexistent/model", "--out", str(tmp_path / "a-file" / "r.html"),
                                 "--workers", "2"])
    assert isinstance(result.exception, InputError) and "--out" in str(result.exception)   # before any rank starts
    result = runner.invoke(app, ["report", "/nonexistent/model", "--out", out, "--workers", "2", "--device", "cuda"])
    assert isinstance(result.exception, InputError) and "torchrun --nproc-per-node" in str(result.exception)
    monkeypatch.setenv("WORLD_SIZE", "2")
    result = runner.invoke(app, ["report", "/nonexistent/model", "--out", out, "--workers", "2"])
    assert isinstance(result.exception, InputError) and "leave it out" in str(result.exception)
    result = runner.invoke(app, ["report", "/nonexistent/model", "--out", out, "--workers", "0"])
    assert result.exit_code == 2 and not (tmp_path / "r.html").exists()


def test_list_writes_the_catalogue(tmp_path):
    result = runner.invoke(app, ["report", "--list", "--json", str(tmp_path / "c.json")])
    assert result.exit_code == 0, result.output
    claims = json.loads((tmp_path / "c.json").read_text())["claims"]
    assert [c["id"] for c in claims][:21] == [f"C{i:02d}" for i in range(1, 22)]
    assert {"slug", "title", "implemented", "reference"} <= set(claims[0])


def test_default_model_is_the_shipped_organism():
    assert report_cli.default_model_spec().startswith("organism:")


def test_estimate_is_printed_before_the_claims_and_half_precision_is_measured(tmp_path, fake_discover):
    js = tmp_path / "r.json"
    result = runner.invoke(app, ["report", "organism:tiny-gpt2", "--claims", "C01,C05", "--out", str(tmp_path / "r.html"),
                                 "--json", str(js), "--dtype", "bf16"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "estimated" in out and out.index("estimated") < out.index("[1/2]")
    assert "(est. " in out                                        # each claim's line shows its estimate
    run = json.loads(js.read_text())["run"]
    assert run["ranks"] == 1 and run["estimated_seconds"] > 0
    precision = run["precision"]
    assert precision["dtype"] == "bfloat16" and precision["reference"] == "float32" and precision["finite"]
    assert 0 < precision["max_abs_dlogit"] < 1 and 0.8 < precision["top1_agreement"] <= 1
    assert "bfloat16" in run["command"] and "top1_agreement" in (tmp_path / "r.html").read_text()


@pytest.mark.parametrize("cores, long_run, tip", [(2, 0.0, True), (1, 0.0, False), (2, 1e9, False)])
def test_a_long_cpu_run_suggests_workers(tmp_path, fake_discover, monkeypatch, cores, long_run, tip):
    monkeypatch.setattr(report_cli, "_cores", lambda: cores)
    monkeypatch.setattr(report_cli, "LONG_RUN_S", long_run)
    result = runner.invoke(app, ["report", "organism:tiny-gpt2", "--claims", "C01", "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    assert ("--workers 2" in result.output) == tip, result.output


@pytest.mark.parametrize("args, message", [
    (["--device", "cuda:7"], "--device"),
    (["--device", "tpu"], "--device"),
    (["--device-map", '{"": "cuda:7"}'], "--device"),
    (["--device-map", "everywhere"], "--device-map"),
    (["--dtype", "int8"], "--dtype"),
])
def test_bad_device_dtype_or_map_fails_before_the_model_loads(tmp_path, args, message, monkeypatch):
    import mechscope

    monkeypatch.setattr(mechscope, "load", lambda *a, **k: pytest.fail("the model was loaded"))
    result = runner.invoke(app, ["report", "organism:tiny-gpt2", "--out", str(tmp_path / "r.html"), *args])
    assert result.exit_code != 0
    assert isinstance(result.exception, InputError) and message in str(result.exception), result.output


def test_a_dtype_the_device_cannot_run_fails_before_the_model_loads(tmp_path, monkeypatch):
    import mechscope
    from mechscope.model import devices

    monkeypatch.setattr(mechscope, "load", lambda *a, **k: pytest.fail("the model was loaded"))
    monkeypatch.setattr(devices, "dtype_problem", lambda dtype, device: "no half kernels" if dtype != devices.DTYPES[
        "fp32"] else None)
    result = runner.invoke(app, ["report", "--out", str(tmp_path / "r.html"), "--dtype", "fp16"])
    assert isinstance(result.exception, InputError)
    assert "float16 cannot run on cpu: no half kernels; use --dtype float32" in str(result.exception)


def test_the_page_so_far_is_written_while_claims_run(tmp_path, fake_discover, monkeypatch):
    """Every PARTIAL_EVERY_S the finished claims are written, marked partial; the last write is the full run."""
    if not STORIES260K.exists():
        pytest.skip(f"stories260K not found at {STORIES260K}")
    import mechscope.report as report_pkg

    monkeypatch.setattr(report_cli, "PARTIAL_EVERY_S", 0.0)
    seen = []
    real_write_json = report_pkg.write_json

    def recording_write_json(rep, path):
        real_write_json(rep, path)
        seen.append(json.loads(path.read_text()))

    monkeypatch.setattr(report_pkg, "write_json", recording_write_json)
    js = tmp_path / "r.json"
    result = runner.invoke(app, ["report", str(STORIES260K), "--claims", "C01,C02,C05", "--out",
                                 str(tmp_path / "r.html"), "--json", str(js)])
    assert result.exit_code == 0, result.output
    assert [[c["id"] for c in s["claims"]] for s in seen] == [["C01"], ["C01", "C02"], ["C01", "C02", "C05"]]
    assert [s["run"].get("status") for s in seen] == [
        "1 of 3 claims finished, the run still going when this page was written",
        "2 of 3 claims finished, the run still going when this page was written", None]


def test_sigterm_writes_the_claims_that_finished(tmp_path, fake_discover, monkeypatch):
    """A run killed with SIGTERM (a timeout) ends like ^C: a valid page of what finished, exit code 130."""
    if not STORIES260K.exists():
        pytest.skip(f"stories260K not found at {STORIES260K}")
    import os
    import signal

    from mechscope.claims import ranks

    real = ranks.run_claims_on_ranks

    def first_claim_then_terminated(model, ids, **kwargs):
        real(model, ids=ids[:1], **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not interrupt the run")

    monkeypatch.setattr(ranks, "run_claims_on_ranks", first_claim_then_terminated)
    before = signal.getsignal(signal.SIGTERM)
    js = tmp_path / "r.json"
    result = runner.invoke(app, ["report", str(STORIES260K), "--claims", "C01,C05", "--out",
                                 str(tmp_path / "r.html"), "--json", str(js)])
    assert result.exit_code == 130, result.output
    data = json.loads(js.read_text())
    assert [c["id"] for c in data["claims"]] == ["C01"]
    assert data["run"]["status"] == "interrupted after 1 of 2 claims"
    assert 'id="partial">Not the whole run: interrupted after 1 of 2 claims.' in (tmp_path / "r.html").read_text()
    assert signal.getsignal(signal.SIGTERM) == before
