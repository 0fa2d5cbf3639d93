"""SAELens format: round trip through our reader/writer, and (where sae_lens is installed) through SAELens."""

import json

import pytest
import torch

from mechscope.dictionary import ARCHITECTURES, SAEConfig, create_sae
from mechscope.dictionary.saelens_format import load_saelens, save_saelens
from mechscope.errors import CheckpointError, InputError


def _trained_like(arch):
    sae = create_sae(SAEConfig(d_in=10, d_sae=30, architecture=arch, k=4, hook_name="blocks.1.hook_resid_post",
                               model_name="tiny", seed=5))
    g = torch.Generator().manual_seed(6)
    x = torch.randn(200, 10, generator=g) * 4 + 2
    sae.initialize_from_data(x)
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.3, generator=g)
        if arch == "jumprelu":
            sae.log_threshold.uniform_(-2, 0, generator=g)
    if arch == "batch_topk":
        sae.train()
        sae(torch.randn(200, 10, generator=g) * 4 + 2)  # sets the inference threshold (on other data: no ties)
    return sae.eval(), x


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_round_trip_computes_the_same_function(tmp_path, arch):
    sae, x = _trained_like(arch)
    assert float(sae.input_scale) != 1.0  # the fold is exercised
    save_saelens(sae, tmp_path / "sae")
    cfg = json.loads((tmp_path / "sae" / "cfg.json").read_text())
    assert cfg["d_in"] == 10 and cfg["d_sae"] == 30 and cfg["metadata"]["hook_name"] == "blocks.1.hook_resid_post"
    back = load_saelens(tmp_path / "sae")
    assert type(back) is type(sae) and back.cfg.hook_name == sae.cfg.hook_name
    torch.testing.assert_close(back.encode(x), sae.encode(x), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(back(x).reconstruction, sae(x).reconstruction, atol=1e-4, rtol=1e-4)


def test_reads_a_saelens_folder_written_by_hand(tmp_path):
    """A folder laid out as SAELens v6 writes it (standard arch, apply_b_dec_to_input false)."""
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)
    W_enc, W_dec = torch.randn(6, 9, generator=g), torch.randn(9, 6, generator=g)
    b_enc, b_dec = torch.randn(9, generator=g), torch.randn(6, generator=g)
    (tmp_path / "s").mkdir()
    save_file({"W_enc": W_enc, "W_dec": W_dec, "b_enc": b_enc, "b_dec": b_dec}, tmp_path / "s" / "sae_weights.safetensors")
    (tmp_path / "s" / "cfg.json").write_text(json.dumps({
        "d_in": 6, "d_sae": 9, "dtype": "float32", "device": "cpu", "apply_b_dec_to_input": False,
        "normalize_activations": "none", "reshape_activations": "none", "architecture": "standard",
        "metadata": {"hook_name": "blocks.0.hook_resid_pre"}}))
    sae = load_saelens(tmp_path / "s")
    x = torch.randn(5, 6, generator=g)
    f = torch.relu(x @ W_enc + b_enc)  # SAELens 'standard' without b_dec on the input
    torch.testing.assert_close(sae.encode(x), f, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sae.decode(f), f @ W_dec + b_dec, atol=1e-5, rtol=1e-5)
    assert sae.cfg.hook_name == "blocks.0.hook_resid_pre" and not sae.cfg.normalize_decoder


def test_bad_folders_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="cfg.json"):
        load_saelens(tmp_path)
    sae, _ = _trained_like("topk")
    save_saelens(sae, tmp_path / "g")
    cfg = json.loads((tmp_path / "g" / "cfg.json").read_text())
    cfg["architecture"] = "gated"
    (tmp_path / "g" / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(InputError, match="not supported"):
        load_saelens(tmp_path / "g")


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_saelens_itself_loads_ours_and_we_load_theirs(tmp_path, arch):
    sae_lens = pytest.importorskip("sae_lens")
    sae, x = _trained_like(arch)
    save_saelens(sae, tmp_path / "ours")
    theirs = sae_lens.SAE.load_from_disk(str(tmp_path / "ours"))
    with torch.no_grad():
        torch.testing.assert_close(theirs.encode(x), sae.encode(x), atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(theirs.decode(theirs.encode(x)), sae.decode(sae.encode(x)), atol=1e-4, rtol=1e-4)
    theirs.save_model(str(tmp_path / "theirs"))
    back = load_saelens(tmp_path / "theirs")
    torch.testing.assert_close(back.encode(x), sae.encode(x), atol=1e-4, rtol=1e-4)
