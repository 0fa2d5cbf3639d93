"""Verdicts under budgets that scale with the model agree with the `full` budget on an organism.

The organisms have 4 blocks, under the quick budget's max_layers (8), so quick runs them unscaled.
To exercise the scaled paths (lens points, sampled layers and positions, screened head patching,
grouped norm freezing, a block subset for deletion, C14's deep sizes) the test narrows max_layers to 3 and compares
each affected claim's verdict, twin included, with the one the `full` budget gives.
"""

from __future__ import annotations

import dataclasses

import pytest

from mechscope.claims.base import Budget
from mechscope.claims.registry import run_claims

AFFECTED = ["C01", "C10", "C11", "C12", "C14", "C16", "C18"]


@pytest.fixture(scope="module")
def organism():
    import mechscope

    return mechscope.load("organism:tiny-gpt2", device="cpu")


def test_scaled_quick_verdicts_equal_full_verdicts_on_tiny_gpt2(organism):
    """Runs in CI (~6 min on 2 cores): while it was marked slow, C16's full budget drifted into measuring
    overfitting (2000 steps on 16 batches) and nobody saw the verdicts part."""
    scaled = dataclasses.replace(Budget.named("quick"), max_layers=3)
    assert scaled.layers(organism.cfg.n_layers) != list(range(organism.cfg.n_layers))   # the scaled path runs
    got = {r.id: (r.verdict, r.error) for r in run_claims(organism, ids=AFFECTED, budget=scaled)}
    want = {r.id: (r.verdict, r.error) for r in run_claims(organism, ids=AFFECTED, budget=Budget.named("full"))}
    assert {k: v[0] for k, v in got.items()} == {k: v[0] for k, v in want.items()}, (got, want)
    assert all(v[0] != "error" for v in got.values()), got


def test_c14_deep_quick_sizes_give_full_verdict_on_the_compiled_memory():   # 17 s: runs in CI
    """The planted memories (3 blocks): C14 under quick with max_layers=2, so its deep sizes (MLP traces only,
    5 noise draws, 3 rewrites, 5 prefixes, E[kkᵀ] over a fifth of the tokens), reads the verdict full reads."""
    import mechscope

    model = mechscope.load("organism:compiled-memory", device="cpu")
    from mechscope.claims import c14_mlp_memory as c14

    scaled = dataclasses.replace(Budget.named("quick"), max_layers=2)
    assert c14.sizes(model, scaled) == c14.DEEP_QUICK
    got = run_claims(model, ids=["C14"], budget=scaled)[0]
    want = run_claims(model, ids=["C14"], budget=Budget.named("full"))[0]
    assert got.verdict == want.verdict == "supported", (got.verdict, got.error, want.verdict, want.error)


SCALELENS = ["C01", "C02", "C03", "C04", "C05", "C06", "C07", "C08", "C09", "C14", "C15", "C16", "C17", "C20", "C21"]


@pytest.mark.slow
def test_quick_verdicts_equal_full_verdicts_on_tiny_gpt2_for_the_scaled_residual_and_feature_claims(organism):
    """The claims whose cost scales with the model (C01-C09, C14-C17, C20, C21; issue 20), twin included:
    quick and full must give the same verdict on the organism, and neither an error."""
    got = {r.id: (r.verdict, r.error) for r in run_claims(organism, ids=SCALELENS, budget=Budget.named("quick"))}
    want = {r.id: (r.verdict, r.error) for r in run_claims(organism, ids=SCALELENS, budget=Budget.named("full"))}
    assert set(got) == set(SCALELENS)
    assert {k: v[0] for k, v in got.items()} == {k: v[0] for k, v in want.items()}, (got, want)
    assert all(v[0] != "error" for v in list(got.values()) + list(want.values())), (got, want)
