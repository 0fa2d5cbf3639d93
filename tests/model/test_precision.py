"""The measured effect of half precision: closed-form numbers on hand-made logits, and a real bf16 model."""

from __future__ import annotations

import math

import pytest
import torch

from mechscope.model.precision import compare_logits, precision_effect, reference_logits


def test_compare_logits_against_hand_computed_numbers():
    ref = torch.zeros(1, 1, 2)                                     # p = (1/2, 1/2), argmax 0
    other = torch.tensor([[[0.0, math.log(3.0)]]])                  # q = (1/4, 3/4), argmax 1
    got = compare_logits(ref, other)
    assert got["max_abs_dlogit"] == pytest.approx(math.log(3.0))
    assert got["mean_kl"] == pytest.approx(0.5 * math.log(2.0) + 0.5 * math.log(2.0 / 3.0), abs=1e-6)
    assert got["top1_agreement"] == 0.0 and got["n_positions"] == 1 and got["finite"]
    same = compare_logits(other, other.clone())
    assert same["max_abs_dlogit"] == 0.0 and same["mean_kl"] == pytest.approx(0.0, abs=1e-7)
    assert same["top1_agreement"] == 1.0
    assert not compare_logits(ref, torch.tensor([[[0.0, float("inf")]]]))["finite"]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_model_effect_is_small_and_measured(dtype):
    import mechscope

    fp32 = mechscope.load("organism:tiny-gpt2", device="cpu")
    half = mechscope.load("organism:tiny-gpt2", device="cpu", dtype=dtype)
    tokens = torch.randint(0, fp32.cfg.d_vocab, (3, 24), generator=torch.Generator().manual_seed(0))
    ref = reference_logits(fp32, tokens)
    effect = precision_effect(ref, half, tokens)
    assert effect["dtype"] == str(dtype).replace("torch.", "") and effect["finite"]
    # independent: the half model's own logits, upcast, against the fp32 model's
    with torch.no_grad():
        direct = (half(tokens).float() - fp32(tokens)).abs().max().item()
    assert effect["max_abs_dlogit"] == pytest.approx(direct, rel=1e-6)
    assert 0 < effect["max_abs_dlogit"] < 1.0 and 0 <= effect["mean_kl"] < 1e-2 and effect["top1_agreement"] > 0.8
