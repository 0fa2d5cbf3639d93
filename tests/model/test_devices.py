"""Devices, dtypes and device maps are checked before any work starts; a device_map keeps hooks and
logits identical to the unmapped model."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from mechscope.errors import InputError
from mechscope.model import devices


@pytest.mark.parametrize("bad", ["cuda:7", "tpu", "floppy"])
def test_a_device_that_does_not_exist_is_refused(bad):
    if bad.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    with pytest.raises(InputError, match="--device"):
        devices.check_device(bad)


def test_dtype_aliases_and_what_the_cpu_runs():
    assert devices.check_dtype("bf16") == "bfloat16" and devices.check_dtype("fp16") == "float16"
    assert devices.check_dtype("fp32") == "float32"
    # torch 2.13 runs float16 matmul, layer norm, softmax and attention on CPU: no problem reported
    assert devices.dtype_problem(torch.float16, "cpu") is None
    with pytest.raises(InputError, match="float32, bfloat16, float16"):
        devices.check_dtype("int8")


def test_a_dtype_the_device_cannot_run_is_refused_with_what_works(monkeypatch):
    real = torch.nn.functional.scaled_dot_product_attention

    def no_half(q, *args, **kwargs):   # a device without float16 kernels, as an old CPU build or an MPS version
        if q.dtype == torch.float16:
            raise RuntimeError('"baddbmm_cpu" not implemented for \'Half\'')
        return real(q, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", no_half)
    with pytest.raises(InputError, match="float16 cannot run on cpu.*not implemented.*use --dtype float32 or bfloat16"):
        devices.check_dtype("fp16", "cpu")


def test_device_map_parsing_and_refusals(tmp_path):
    assert devices.check_device_map(None) is None
    assert devices.check_device_map("auto") == "auto"
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"transformer.h.0": "cpu", "": "cpu"}))
    assert devices.check_device_map(str(path)) == {"transformer.h.0": "cpu", "": "cpu"}
    with pytest.raises(InputError, match="--device"):
        devices.check_device_map('{"": "cuda:7"}' if torch.cuda.device_count() <= 7 else '{"": "tpu"}')
    with pytest.raises(InputError, match="not valid JSON"):
        devices.check_device_map("{nope")
    with pytest.raises(InputError, match="auto, balanced"):
        devices.check_device_map("everywhere")
    unsplittable = type("ToyForCausalLM", (), {"_no_split_modules": None})
    with pytest.raises(InputError, match="ToyForCausalLM.*cannot be split automatically"):
        devices.check_device_map("balanced", unsplittable)
    assert devices.check_device_map("balanced", SimpleNamespace(_no_split_modules=["Block"])) == "balanced"


def test_an_explicit_cpu_map_gives_the_unmapped_model_hooks_and_logits():
    import mechscope

    plain = mechscope.load("organism:tiny-gpt2", device="cpu")
    layout = {"transformer.wte": "cpu", "transformer.wpe": "cpu", "transformer.h": "cpu", "transformer.ln_f": "cpu",
              "lm_head": "cpu"}
    mapped = mechscope.load("organism:tiny-gpt2", device_map=layout)
    # transformers dispatches with accelerate's hooks only across 2+ devices; force them on this
    # 1-device machine so the test covers what a multi-GPU map installs (AlignDevicesHook per module)
    from accelerate import dispatch_model

    dispatch_model(mapped.hf_model, device_map=layout, force_hooks=True)
    assert hasattr(mapped.hf_model.transformer.h, "_hf_hook")
    tokens = plain.to_tokens(["The cat sat on the mat because it was tired"])
    names = ["blocks.1.hook_resid_pre", "blocks.2.attn.hook_pattern", "blocks.3.mlp.hook_post"]
    logits_a, cache_a = plain.run_with_cache(tokens, names=names)
    logits_b, cache_b = mapped.run_with_cache(tokens, names=names)
    torch.testing.assert_close(logits_b, logits_a, rtol=0, atol=0)
    for name in names:
        torch.testing.assert_close(cache_b[name], cache_a[name], rtol=0, atol=0)
    with mapped.hooks(fwd={"blocks.1.hook_resid_pre": lambda x, hook: x * 0}):
        ablated = mapped(tokens)
    assert not torch.allclose(ablated, logits_a)         # a hook on the mapped model still intervenes
