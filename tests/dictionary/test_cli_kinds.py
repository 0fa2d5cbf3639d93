"""`mechscope sae train --kind transcoder | crosscoder` end to end on the default organism, and
save_dictionary / load_dictionary round trips for every kind."""

import pytest
import torch
from typer.testing import CliRunner

from mechscope.cli import app
from mechscope.dictionary.clt import CLTConfig, create_clt
from mechscope.dictionary.crosscoder import CrosscoderConfig, create_crosscoder
from mechscope.dictionary.transcoder import TranscoderConfig, create_transcoder
from mechscope.dictionary.transcoder_format import load_dictionary, save_dictionary


@pytest.mark.parametrize("kind,hooks,expect", [
    ("transcoder", ["blocks.1.ln2.hook_normalized"], "transcoder_topk@blocks.1.ln2.hook_normalized"),
    ("crosscoder", ["blocks.1.hook_resid_post", "blocks.2.hook_resid_post"], "crosscoder_relu_l1"),
    ("clt", ["blocks.0.ln2.hook_normalized", "blocks.1.ln2.hook_normalized"], "clt_topk"),
])
def test_sae_train_kind(tmp_path, kind, hooks, expect):
    args = ["sae", "train", "organism:tiny-gpt2", "--kind", kind, "--out", str(tmp_path), "--steps", "5",
            "--batch", "64", "--seq-len", "16", "--n-sequences", "8", "--expansion", "2", "--k", "4"]
    for h in hooks:
        args += ["--hook", h]
    if kind == "crosscoder":
        args += ["--arch", "relu_l1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + str(result.exception)
    d = load_dictionary(tmp_path / expect)
    assert d.d_sae == 2 * d.d_in * (len(hooks) if kind == "clt" else 1) and bool(d.initialized)


def test_transcoder_input_hook_is_checked(tmp_path):
    result = CliRunner().invoke(app, ["sae", "train", "organism:tiny-gpt2", "--kind", "transcoder", "--out",
                                      str(tmp_path), "--hook", "blocks.1.hook_resid_post", "--steps", "1"])
    assert result.exit_code != 0 and "MLP input" in (result.output + str(result.exception))


@pytest.mark.parametrize("make", [
    lambda: create_transcoder(TranscoderConfig(d_in=8, d_sae=16, k=3, hook_name="a", output_hook_name="b",
                                               skip_connection=True)),
    lambda: create_transcoder(TranscoderConfig(d_in=8, d_sae=16, architecture="jumprelu", hook_name="a",
                                               output_hook_name="b")),
    lambda: create_crosscoder(CrosscoderConfig(d_in=8, d_sae=16, architecture="relu_l1", sources=("a", "b"))),
    lambda: create_clt(CLTConfig.for_model(4, 2, d_sae=8, k=3)),
])
def test_save_and_load_dictionary_round_trip(tmp_path, make):
    d = make()
    with torch.no_grad():
        for p in d.parameters():
            p.add_(0.1 * torch.randn(p.shape))
    d.eval()
    x = torch.randn(5, 16 if getattr(d, "is_transcoder", False) else 8)
    if getattr(d, "is_cross_layer", False):
        with torch.no_grad():
            d.W_dec.mul_(d.decoder_mask)     # the random update above also touched the masked blocks
    back = load_dictionary(save_dictionary(d, tmp_path / "d"))
    torch.testing.assert_close(back(x).reconstruction, d(x).reconstruction)
