"""FSDP: 2 gloo ranks with the model sharded (each holding half of every block) give the 1-process
attribution-patching grids and EAP / EAP-IG edge scores; the refusals say what to do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mechscope.errors import InputError
from mechscope.model import HookedModel
from mechscope.model.sharding import is_sharded, shard_across_ranks, whole
from tests.helpers import run_on_ranks, small_hf_model

WORKER = Path(__file__).with_name("fsdp_worker.py")


def _run(out: Path, ranks: int, *flags: str) -> dict:
    run_on_ranks([WORKER, out, *flags], ranks)
    return json.loads(out.read_text())


def _close(a: list[float], b: list[float], rel: float = 1e-5) -> bool:
    scale = max(abs(x) for x in a)
    return scale > 0 and max(abs(x - y) for x, y in zip(a, b, strict=True)) <= rel * scale


@pytest.mark.slow
def test_two_sharded_ranks_equal_one_unsharded_process(tmp_path):
    one = _run(tmp_path / "one.json", 1)
    runs = {"sharded": _run(tmp_path / "sharded.json", 2, "--shard"),
            "data-parallel": _run(tmp_path / "ddp.json", 2)}
    for arch, a in one.items():
        assert not a["sharded"] and a["local_block_numel"] == a["block_numel"]
        for kind, run in runs.items():
            b = run[arch]
            assert b["sharded"] == (kind == "sharded") and b["views_max_diff"] == 0.0, (arch, kind)
            edits = ["fold_layer_norm", "add_to_W_out"] if kind == "sharded" else []
            assert b["edits_refused"] == edits, (arch, kind)
            if kind == "sharded":     # dim-0 shards: each rank holds half of the blocks' parameters, +- a row
                assert abs(b["local_block_numel"] / b["block_numel"] - 0.5) < 0.01, (arch, b["local_block_numel"])
            assert b["n_prompts"] == a["n_prompts"] == 8
            assert b["clean"] == pytest.approx(a["clean"], rel=1e-5) and b["corrupt"] == pytest.approx(a["corrupt"],
                                                                                                       rel=1e-5)
            for site, values in a["attribution"].items():
                assert _close(values, b["attribution"][site]), (arch, kind, site)
            for method in ("eap", "eap-ig", "eap-ig-activations"):
                assert _close(a[method], b[method]), (arch, kind, method)


def test_sharding_needs_torchrun():
    model = HookedModel(small_hf_model("gpt2", n_layers=1, d_model=32, vocab=100), None)
    with pytest.raises(InputError, match="torchrun"):
        shard_across_ranks(model)
    assert not is_sharded(model)


def test_sharding_refuses_a_device_map():
    model = HookedModel(small_hf_model("gpt2", n_layers=1, d_model=32, vocab=100), None)
    model.hf_model.hf_device_map = {"": "cpu"}
    with pytest.raises(InputError, match="device_map"):
        shard_across_ranks(model)


def test_whole_returns_a_plain_tensor_unchanged():
    model = HookedModel(small_hf_model("gpt2", n_layers=1, d_model=32, vocab=100), None)
    w = model.structure.unembed.weight
    assert whole(w) is w and whole(None) is None


def test_cli_fsdp_needs_torchrun_and_a_gradient_method(monkeypatch):
    from typer.testing import CliRunner

    from mechscope.cli import app

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    res = CliRunner().invoke(app, ["patch", "attribute", "organism:tiny-gpt2", "--n-prompts", "4", "--fsdp"])
    assert res.exit_code != 0 and "torchrun" in str(res.output) + str(res.exception)
    res = CliRunner().invoke(app, ["circuit", "discover", "organism:tiny-gpt2", "--method", "acdc", "--fsdp"])
    assert res.exit_code != 0 and "eap-ig" in str(res.output) + str(res.exception)


@pytest.mark.slow
def test_cli_attribute_with_fsdp_on_two_ranks(tmp_path):
    args = ["-m", "mechscope", "patch", "attribute", "organism:tiny-gpt2", "--n-prompts", "6", "--sites", "resid_pre,z"]
    out = {}
    for ranks in (1, 2):
        path = tmp_path / f"{ranks}.json"
        extra = ["--fsdp"] if ranks > 1 else []
        run_on_ranks([*args, *extra, "--json", path], ranks)
        out[ranks] = json.loads(path.read_text())
    for site in ("resid_pre", "z"):
        a = [x for row in out[1]["values"][site] for x in row]
        b = [x for row in out[2]["values"][site] for x in row]
        assert _close(a, b), site
