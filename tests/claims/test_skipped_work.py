"""Work a rule never reads is skipped, and skipping can never decide a verdict: the null twin is measured
for what the rule reads from it (NULL_READS), the claims that skip work there read the same numbers as a
run that does all of it, and a model without a behaviour gets no circuit search (Measurement.unmeasured)."""

from __future__ import annotations

import dataclasses
import types

import pytest

from mechscope.claims.base import Budget, Measurement, null_budget, null_reads_of
from mechscope.claims.catalogue import BY_ID
from mechscope.claims.registry import ClaimSpec, NullTwin, run_one


class _Model:
    def __init__(self, value):
        self.value = value


def _claim(calls: list):
    module = types.ModuleType("c07_fake")

    def measure(model, budget):
        calls.append((model.value, budget.reads))
        metrics = {"value": float(model.value)}
        if budget.reads_any("costly"):
            metrics["costly"] = float("nan") if model.value == 0 else 1.0
        return Measurement(metrics, key_metric="value")

    module.__dict__.update(ID="C07", NULL="twin", READS=("value", "costly"), NULL_READS=("value",), RULE="r",
                           measure=measure,
                           verdict=lambda m, null: "supported" if m["value"] >= null["value"] + 1 else "not supported")
    return module


def test_the_twin_is_measured_for_null_reads_and_checked_only_there():
    calls = []
    module = _claim(calls)
    result = run_one(_Model(2), ClaimSpec(BY_ID["C07"], module=module), Budget(), NullTwin(_Model(2), _Model(0)))
    assert calls == [(2, None), (0, ("value",))]
    assert result.verdict == "supported", result.error   # the twin's unread metric was never asked for
    assert result.null_metrics == {"value": 0.0}


def test_a_twin_that_misses_what_the_rule_reads_is_an_error():
    calls = []
    module = _claim(calls)
    module.NULL_READS = ("value", "costly")   # now the twin must give "costly", and its NaN blocks the verdict
    result = run_one(_Model(2), ClaimSpec(BY_ID["C07"], module=module), Budget(), NullTwin(_Model(2), _Model(0)))
    assert calls[1] == (0, ("value", "costly"))
    assert result.verdict == "error" and "null twin costly" in result.error


def _unmeasured_claim(reads_costly: bool):
    module = types.ModuleType("c07_fake")

    def verdict(m, null):
        if m["value"] < 1 and not reads_costly:
            return "not supported"
        return "supported" if m["costly"] > 0 else "inconclusive"

    module.__dict__.update(ID="C07", NULL="none", READS=("value", "costly"), RULE="r", verdict=verdict,
                           measure=lambda model, budget: Measurement({"value": 0.0}, key_metric="value",
                                                                     unmeasured=("costly",)))
    return module


def test_an_unmeasured_reading_may_be_missing_only_while_the_rule_does_not_read_it():
    result = run_one(_Model(0), ClaimSpec(BY_ID["C07"], module=_unmeasured_claim(False)), Budget())
    assert (result.verdict, result.error) == ("not supported", None)
    result = run_one(_Model(0), ClaimSpec(BY_ID["C07"], module=_unmeasured_claim(True)), Budget())
    assert result.verdict == "error" and "'costly', which the experiment did not measure" in result.error


@pytest.mark.parametrize("claim_id", ["C10", "C11"])
def test_no_circuit_is_searched_for_an_absent_behaviour(claim_id, twin):
    """The twin (accuracy about 50%) measured as a model: the baseline decides "not supported", and the
    circuit's metrics are unmeasured, not invented."""
    from mechscope.claims.registry import discover

    spec = next(s for s in discover() if s.id == claim_id)
    measured = spec.module.measure(twin, Budget.named("quick"))
    assert measured.metrics["accuracy"] < spec.module.NO_BEHAVIOUR
    assert "faithfulness" in measured.unmeasured and "faithfulness" not in measured.metrics
    assert spec.module.verdict(measured.metrics, None) == "not supported"


def test_c13_scores_no_circuit_when_no_task_shows_the_behaviour(twin):
    from mechscope.claims import c13_circuits_not_crisp as c13

    measured = c13.measure(twin, Budget.named("quick"))
    assert measured.metrics["n_tasks_with_behaviour"] == 0 and measured.unmeasured == ("edges_for_80",)
    assert all(t["gap"] < c13.MIN_GAP for t in measured.metrics["tasks"].values())
    assert c13.verdict(measured.metrics, None) == "inconclusive"


def test_reads_any():
    assert Budget().reads_any("x")
    assert Budget(reads=("x",)).reads_any("y", "x")
    assert not Budget(reads=("x",)).reads_any("y")
    assert not Budget(reads=()).reads_any("x")


@pytest.fixture(scope="module")
def organism():
    import mechscope

    return mechscope.load("organism:tiny-gpt2", device="cpu")


@pytest.fixture(scope="module")
def twin(organism):
    from mechscope.claims.null_twin import build_null_twin

    return build_null_twin(organism)


@pytest.mark.parametrize("claim_id", ["C09", "C12", "C13", "C14", "C16"])
def test_the_twin_run_reads_what_the_whole_run_reads(claim_id, twin, organism):
    """C09 (no ablations), C12 (no refinement), C13 (no mean-ablation curve), C14 (no edits) and C16 (no
    fine-tunes) skip work on the twin's run: the numbers the rule reads from the null equal those of the
    whole experiment on the same model."""
    from mechscope.claims.registry import discover, seed_everything

    module = next(s.module for s in discover() if s.id == claim_id)
    model = organism if claim_id == "C13" else twin   # the twin shows no behaviour: C13's whole run stops early
    budget = Budget.named("quick")
    if claim_id == "C12":   # sampled layers, so that it could refine
        budget = dataclasses.replace(budget, max_layers=2)
    seed_everything(budget.seed)
    whole = module.measure(model, budget).metrics
    seed_everything(budget.seed)
    part = module.measure(model, null_budget(module, budget)).metrics
    for key in null_reads_of(module):
        assert part[key] == pytest.approx(whole[key], rel=1e-5, abs=1e-6), key
    if claim_id == "C13":   # the up-front gaps that decide "no behaviour" are the curves' own
        from mechscope.tasks import get_task

        for name, task_metrics in whole["tasks"].items():
            task = get_task(model, name, n_prompts=max(8, budget.n_prompts // 2), seed=budget.seed)
            assert module.behaviour_gap(model, task) == pytest.approx(task_metrics["gap"], abs=1e-4), name
    if claim_id != "C12":   # C12 refines only when the gap is large, which a twin's is not
        assert _readings(part) < _readings(whole)   # it did skip something


def _readings(metrics) -> int:
    """How many non-None numbers and strings `metrics` holds, nested ones included."""
    if isinstance(metrics, dict):
        return sum(_readings(v) for v in metrics.values())
    if isinstance(metrics, list | tuple):
        return sum(_readings(v) for v in metrics)
    return int(metrics is not None)


@pytest.mark.parametrize("claim_id", ["C10", "C11"])
def test_head_circuit_claims_read_only_the_baseline_on_the_twin(claim_id, twin):
    from mechscope.claims.head_circuit import FIRST_PROMPTS
    from mechscope.claims.registry import discover

    module = next(s.module for s in discover() if s.id == claim_id)
    budget = null_budget(module, Budget.named("quick"))
    metrics = module.measure(twin, budget).metrics
    assert metrics["n_prompts"] == FIRST_PROMPTS and "faithfulness" not in metrics
    whole = module.measure(twin, Budget.named("quick")).metrics
    if whole["n_prompts"] == FIRST_PROMPTS:   # the same prompts: the same logit diff
        assert metrics["logit_diff"] == pytest.approx(whole["logit_diff"], rel=1e-6)
