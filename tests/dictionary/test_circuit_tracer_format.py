"""circuit-tracer's transcoder-set format (dictionary/circuit_tracer_format.py): the files, read with
circuit-tracer's own arithmetic written out here (F.linear encoder, activation, decoder, W_skip.T),
compute what our transcoders compute, and reading them back gives the same transcoders."""

import pytest
import torch
import yaml
from safetensors.torch import load_file

from mechscope.dictionary.circuit_tracer_format import load_circuit_tracer, save_circuit_tracer
from mechscope.dictionary.transcoder import TranscoderConfig, create_transcoder
from mechscope.errors import InputError

D, M, K = 8, 24, 4


def _transcoders(arch, skip):
    out = {}
    for layer in range(2):
        tc = create_transcoder(TranscoderConfig.for_mlp(D, layer, architecture=arch, d_sae=M, k=K,
                                                        skip_connection=skip, seed=layer, jumprelu_init_threshold=0.2))
        gen = torch.Generator().manual_seed(10 + layer)
        with torch.no_grad():
            for p in tc.parameters():
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
            tc.b_enc.add_(1.0)                   # at least k positive pre-activations per token (see TopK below)
            tc.input_scale.fill_(1.7)
            tc.output_scale.fill_(0.6)
            if arch == "batch_topk":
                tc.threshold.fill_(0.9)
                tc.threshold_set.fill_(True)
        out[layer] = tc.eval()
    return out


def _their_forward(w: dict, config: dict, x):
    """SingleLayerTranscoder.forward, written out: encode, activation, decode (+ skip)."""
    pre = torch.nn.functional.linear(x, w["W_enc"], w["b_enc"])
    if "activation_function.threshold" in w:
        acts = pre * (pre > w["activation_function.threshold"])
    else:
        acts = torch.relu(pre)
    y = acts @ w["W_dec"] + w["b_dec"]
    return y + x @ w["W_skip"].T if "W_skip" in w else y


@pytest.mark.parametrize("arch,skip", [("relu_l1", False), ("batch_topk", True), ("jumprelu", True), ("batch_topk", False)])
def test_files_compute_what_our_transcoders_compute_and_read_back(tmp_path, arch, skip):
    tcs = _transcoders(arch, skip)
    folder = save_circuit_tracer(tcs, tmp_path / "ct")
    config = yaml.safe_load((folder / "config.yaml").read_text())
    assert config["model_kind"] == "transcoder_set" and config["transcoders"] == ["layer_0.safetensors", "layer_1.safetensors"]
    # circuit-tracer's mlp.hook_in is the MLP input (after ln2's weight and bias), which our ln2.hook_normalized is
    assert config["feature_input_hook"] == "mlp.hook_in" and config["feature_output_hook"] == "hook_mlp_out"
    assert set(config) >= {"activation", "scan_name"} and config["activation"] in ("relu", "jump_relu")
    x = torch.randn(32, D, generator=torch.Generator().manual_seed(0))
    back = load_circuit_tracer(folder)
    for layer, tc in tcs.items():
        w = load_file(str(folder / f"layer_{layer}.safetensors"))
        assert w["W_enc"].shape == (M, D) and w["W_dec"].shape == (M, D)
        ours = tc.transcode(x).detach()
        torch.testing.assert_close(_their_forward(w, config, x), ours, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(back[layer].transcode(x).detach(), ours, atol=1e-5, rtol=1e-5)
        assert back[layer].cfg.hook_name == f"blocks.{layer}.ln2.hook_normalized"


def test_input_hook_names_and_refusals(tmp_path):
    """mlp.hook_in and hook_resid_mid read as ours; TransformerLens' ln2.hook_normalized (before the norm's
    weight and bias) is refused rather than read as our ln2.hook_normalized (after them); TopK is not
    written (circuit-tracer 0.5.0's loader fails on the `k` entry); mixed sets are refused."""
    folder = save_circuit_tracer(_transcoders("relu_l1", False), tmp_path / "ct")
    assert load_circuit_tracer(folder)[1].cfg.hook_name == "blocks.1.ln2.hook_normalized"
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["feature_input_hook"] = "hook_resid_mid"
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    assert load_circuit_tracer(folder)[1].cfg.hook_name == "blocks.1.hook_resid_mid"
    config["feature_input_hook"] = "ln2.hook_normalized"
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(InputError, match="before its weight and bias"):
        load_circuit_tracer(folder)
    with pytest.raises(InputError, match="ReLU and JumpReLU"):
        save_circuit_tracer(_transcoders("topk", False), tmp_path / "topk")
    mixed = {0: _transcoders("relu_l1", False)[0], 1: _transcoders("jumprelu", False)[1]}
    with pytest.raises(InputError, match="one activation"):
        save_circuit_tracer(mixed, tmp_path / "mixed")


def test_graph_command_reads_a_circuit_tracer_folder(tmp_path):
    import json

    from typer.testing import CliRunner

    import mechscope
    from mechscope.cli import app
    from tests.graphs.graph_helpers import random_transcoders

    save_circuit_tracer(random_transcoders(mechscope.load("organism:tiny-gpt2"), arch="relu_l1"), tmp_path / "ct")
    result = CliRunner().invoke(app, ["graph", "Once upon a time", "--model", "organism:tiny-gpt2", "--transcoders",
                                      str(tmp_path / "ct"), "--json", str(tmp_path / "g.json")])
    assert result.exit_code == 0, result.output + str(result.exception)
    assert json.loads((tmp_path / "g.json").read_text())["links"]
