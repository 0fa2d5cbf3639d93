"""(slow) The whole claims report on a small random-init model of every adapted architecture: each
claim ends in a verdict, "not applicable" with its reason, or an inconclusive read from finite
numbers; never "error". Architecture-specific weight names or hook layouts show up here first."""

from __future__ import annotations

import pytest

from mechscope.claims.base import Budget, non_finite
from mechscope.claims.registry import run_claims
from tests.helpers import ARCHES, gpt2_tokenizer, small_hf_model

SMALL = Budget(name="quick", n_prompts=16, seq_len=32, n_sequences=8, train_steps=40)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHES)
def test_every_claim_ends_cleanly(arch):
    from mechscope import HookedModel

    hf = small_hf_model(arch, n_layers=2, d_model=64, n_heads=4, n_ctx=256)
    model = HookedModel.from_hf(hf, gpt2_tokenizer(), spec=f"random:{arch}")
    results = run_claims(model, budget=SMALL)
    assert len(results) >= 21
    for r in results:
        assert r.verdict != "error", (arch, r.id, r.error)
        if r.verdict == "not applicable":
            assert (r.error or r.evidence).strip(), (arch, r.id, "not applicable without a reason")
        if r.verdict in ("supported", "not supported", "inconclusive") and r.key_metric in r.metrics:
            assert not non_finite(r.metrics[r.key_metric]), (arch, r.id, r.key_metric, r.metrics[r.key_metric])
