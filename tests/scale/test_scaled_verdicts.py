"""Verdicts under budgets that scale with the model agree with the `full` budget on an organism.

The organisms have 4 blocks, under the quick budget's max_layers (8), so quick runs them unscaled.
To exercise the scaled paths (lens points, sampled layers and positions, screened head patching,
grouped norm freezing, a block subset for deletion) the test narrows max_layers to 3 and compares
each affected claim's verdict, twin included, with the one the `full` budget gives.
"""

from __future__ import annotations

import dataclasses

import pytest

from mechscope.claims.base import Budget
from mechscope.claims.registry import run_claims

AFFECTED = ["C01", "C10", "C11", "C12", "C16", "C18"]


@pytest.fixture(scope="module")
def organism():
    import mechscope

    return mechscope.load("organism:tiny-gpt2", device="cpu")


@pytest.mark.slow
def test_scaled_quick_verdicts_equal_full_verdicts_on_tiny_gpt2(organism):
    scaled = dataclasses.replace(Budget.named("quick"), max_layers=3)
    assert scaled.layers(organism.cfg.n_layers) != list(range(organism.cfg.n_layers))   # the scaled path runs
    got = {r.id: (r.verdict, r.error) for r in run_claims(organism, ids=AFFECTED, budget=scaled)}
    want = {r.id: (r.verdict, r.error) for r in run_claims(organism, ids=AFFECTED, budget=Budget.named("full"))}
    assert {k: v[0] for k, v in got.items()} == {k: v[0] for k, v in want.items()}, (got, want)
    assert all(v[0] != "error" for v in got.values()), got
