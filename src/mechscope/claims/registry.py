"""Find the claim modules, merge them with the catalogue, and run them one after another.

A claim module is any module ``mechscope.claims.cNN_<slug>`` (found with pkgutil, so a new claim
needs no registration) that obeys the contract of claims/base.py (measure, verdict, RULE, NULL,
READS). Every catalogue entry is listed: one without a module yields a "not implemented" result.
For each claim the runner:

1. seeds everything with budget.seed and calls measure(model, budget);
2. when NULL == "twin", builds the null twin once per run (claims/null_twin.py), seeds again and
   calls measure(twin, budget) with budget.reads = NULL_READS (the claim may skip the rest);
3. checks every number under READS in the model's metrics and under NULL_READS in the twin's: one
   that is missing or not finite gives "error" with the reason, and the rule is not applied (a key the
   model's Measurement lists as `unmeasured` may be missing, and gives "error" if the rule reads it);
4. otherwise calls verdict(metrics, null_metrics).

A claim that raises yields an "error" result with its message and the others still run; one that
raises `NotApplicableError` yields "not applicable" with the reason. A model with a non-finite
weight gives "error" for every claim that reads the model, before any of them runs.

Usage::

    from mechscope.claims.registry import run_claims
    results = run_claims(model, ids=["C02", "C09"], budget=Budget.named("quick"))
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import random
import re
import time
import traceback
from collections.abc import Callable, Iterable
from types import ModuleType

from mechscope.claims.base import (
    NULL_NONE,
    NULL_TWIN,
    RULE_VERDICTS,
    Budget,
    ClaimResult,
    Measurement,
    null_budget,
    null_reads_of,
    unreadable,
)
from mechscope.claims.catalogue import BY_ID, CATALOGUE, CatalogueEntry
from mechscope.claims.model_guard import ModelGuard
from mechscope.errors import InputError, NotApplicableError

CLAIMS_PACKAGE = "mechscope.claims"
_MODULE_NAME = re.compile(r"^c(\d{2})_[a-z0-9_]+$")


@dataclasses.dataclass
class ClaimSpec:
    """A catalogue entry and, when implemented, the module that runs it.

    import_error: the message when the module exists but failed to import (the claim then
    reports "error" instead of taking the whole report down).
    """

    entry: CatalogueEntry
    module: ModuleType | None = None
    import_error: str | None = None

    @property
    def id(self) -> str:
        return self.entry.id

    @property
    def implemented(self) -> bool:
        return self.module is not None or self.import_error is not None


# on_progress(index, total, spec, result): called with result=None before a claim runs and with
# its ClaimResult after. index counts from 1.
ProgressCallback = Callable[[int, int, ClaimSpec, "ClaimResult | None"], None]


def discover(package: str = CLAIMS_PACKAGE) -> list[ClaimSpec]:
    """Every claim: the catalogue's 21, plus any module whose ID the catalogue lacks; sorted by id."""
    specs = {entry.id: ClaimSpec(entry) for entry in CATALOGUE}
    pkg = importlib.import_module(package)
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        match = _MODULE_NAME.match(info.name)
        if not match:
            continue
        claim_id = f"C{match.group(1)}"
        try:
            module = importlib.import_module(f"{package}.{info.name}")
        except Exception as err:  # a broken claim module must not break the report
            entry = specs.get(claim_id, ClaimSpec(_entry_from_filename(claim_id, info.name))).entry
            specs[claim_id] = ClaimSpec(entry, import_error=f"import of {info.name} failed: {_describe(err)}")
            continue
        problem = contract_problem(module, claim_id)
        if problem:
            entry = specs.get(claim_id, ClaimSpec(_entry_from_filename(claim_id, info.name))).entry
            specs[claim_id] = ClaimSpec(entry, import_error=f"{info.name} breaks the claim contract: {problem}")
            continue
        entry = specs[claim_id].entry if claim_id in specs else _entry_from_module(module, info.name)
        specs[claim_id] = ClaimSpec(entry, module=module)
    return [specs[key] for key in sorted(specs)]


def contract_problem(module: ModuleType, claim_id: str) -> str | None:
    """What a claim module lacks of the contract (claims/base.py), or None when it obeys it."""
    module_id = str(getattr(module, "ID", "")).upper()
    if module_id != claim_id:
        return f"ID must be {claim_id!r} (found {module_id or None!r})"
    missing = [name for name in ("measure", "verdict") if not callable(getattr(module, name, None))]
    missing += [name for name in ("RULE", "NULL") if not isinstance(getattr(module, name, None), str)]
    if missing:
        return f"it must define {', '.join(missing)}"
    reads = getattr(module, "READS", None)
    if not isinstance(reads, tuple) or not all(isinstance(r, str) for r in reads):
        return "READS must be a tuple of metric names"
    null_reads = getattr(module, "NULL_READS", reads)
    if not isinstance(null_reads, tuple) or not set(null_reads) <= set(reads):
        return "NULL_READS must be a tuple of names from READS"
    if not module.RULE.strip() or not module.NULL.strip():
        return "RULE and NULL must say something"
    for name in ("SLUG", "TITLE", "REFERENCE"):
        if hasattr(module, name) and claim_id in BY_ID:
            return f"{name} belongs in claims/catalogue.py, not in the module"
    return None


def normalize_id(text: str) -> str:
    """ "c9", "C09", "9", " C09 " -> "C09"."""
    raw = text.strip().upper()
    digits = raw[1:] if raw.startswith("C") else raw
    if not digits.isdigit():
        raise InputError(f"claim id {text!r} is not of the form C09; list the claims with `mechscope report --list`")
    return f"C{int(digits):02d}"


def parse_ids(text: str | Iterable[str] | None) -> list[str] | None:
    """"C01,C09" or ["C01", "C09"] -> ["C01", "C09"]; None or "" -> None (all claims)."""
    if text is None:
        return None
    parts = text.split(",") if isinstance(text, str) else list(text)
    ids = [normalize_id(p) for p in parts if p.strip()]
    return ids or None


def select(specs: list[ClaimSpec], ids: Iterable[str] | None) -> list[ClaimSpec]:
    """The specs named by `ids` (in catalogue order); all of them when ids is None."""
    if ids is None:
        return list(specs)
    wanted = {normalize_id(i) for i in ids}
    known = {s.id for s in specs}
    unknown = sorted(wanted - known)
    if unknown:
        raise InputError(f"unknown claim id(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return [s for s in specs if s.id in wanted]


def run_claims(model, ids: str | Iterable[str] | None = None, budget: Budget | None = None,
               on_progress: ProgressCallback | None = None,
               specs: list[ClaimSpec] | None = None, null_twin=None) -> list[ClaimResult]:
    """Run the selected claims on `model` (a HookedModel) in id order; one ClaimResult each.

    ids: "C01,C09", ["C01", "C09"] or None for every claim (those without a module included).
    null_twin: the model the NULL="twin" claims are also measured on; None builds the re-initialised
    twin (claims/null_twin.py) once, when the first such claim runs.

    Each claim is seeded with budget.seed (torch, numpy, random) just before it runs on the model
    and again before it runs on the twin, so its result does not depend on which claims ran before
    it. Never raises for a failing claim.
    """
    chosen = select(specs if specs is not None else discover(), parse_ids(ids))
    runner = ClaimRunner(model, budget, null_twin)
    return [runner.run(spec, index, len(chosen), on_progress) for index, spec in enumerate(chosen, start=1)]


class ClaimRunner:
    """Runs claims one at a time on one model, sharing its null twin and restoring both after each claim:
    `run_claims` in id order, `claims.ranks` in the order a rank takes them from the shared queue."""

    def __init__(self, model, budget: Budget | None = None, null_twin=None):
        self.model, self.budget = model, budget or Budget.named("quick")
        self.guard = ModelGuard(model)
        self.twins = NullTwin(model, null_twin)
        self.broken = _non_finite_weights(model)

    def run(self, spec: ClaimSpec, index: int, total: int,
            on_progress: ProgressCallback | None = None) -> ClaimResult:
        """Run `spec` (the index-th of total, for on_progress) and undo what it changed on the model."""
        if on_progress:
            on_progress(index, total, spec, None)
        if self.broken and spec.module is not None and getattr(spec.module, "NULL", "") != NULL_NONE:
            result = _result(spec.entry, "error", rule=getattr(spec.module, "RULE", ""),
                             null=getattr(spec.module, "NULL", ""),
                             error=f"the model has non-finite weights ({self.broken}): no verdict is read from it",
                             evidence="The experiment was not run: a model with NaN or infinite weights gives "
                                      "numbers that mean nothing.")
        else:
            result = run_one(self.model, spec, self.budget, self.twins)
        if spec.module is not None:
            problem = self.guard.check_and_restore()
            if problem:
                result.error = f"{result.error}; {problem}" if result.error else problem
        if on_progress:
            on_progress(index, total, spec, result)
        return result


class NullTwin:
    """The null twin of one report run: built on first use, then shared by every claim.

    A failure to build it is remembered and reported by every claim that needs it.
    """

    def __init__(self, model, twin=None):
        self.model, self.twin, self.error, self.guard = model, twin, None, None
        if twin is not None:
            self.guard = ModelGuard(twin)

    def get(self):
        if self.twin is None and self.error is None:
            from mechscope.claims.null_twin import build_null_twin

            try:
                self.twin = build_null_twin(self.model)
                self.guard = ModelGuard(self.twin)
            except Exception as err:  # noqa: BLE001 - reported by each claim that needs the twin
                self.error = _describe(err)
        if self.twin is None:
            raise RuntimeError(f"the null twin could not be built: {self.error}")
        return self.twin

    def restore(self) -> None:
        """Undo what a claim left changed on the twin, so the next claim reads the same twin."""
        if self.guard is not None:
            self.guard.check_and_restore()


def run_one(model, spec: ClaimSpec, budget: Budget, twins: NullTwin | None = None) -> ClaimResult:
    """Run one claim (on the model, and on its null twin when NULL == "twin"), turning every way it can
    fail into a ClaimResult."""
    entry = spec.entry
    if spec.import_error is not None:
        return _result(entry, "error", error=spec.import_error,
                       evidence="The claim module could not be loaded, so the experiment did not run.")
    if spec.module is None:
        return _result(entry, "not implemented",
                       evidence="This experiment is not built yet.", method=entry.experiment)
    module = spec.module
    null = str(getattr(module, "NULL", ""))
    seed_everything(budget.seed)
    start = time.perf_counter()
    try:
        measured = module.measure(model, budget)
        if not isinstance(measured, Measurement):
            raise TypeError(f"measure() returned {type(measured).__name__}, not a Measurement")
    except NotApplicableError as err:
        return _timed(_result(entry, "not applicable", evidence=str(err), method=entry.experiment,
                              rule=module.RULE, null=null), start)
    except Exception as err:  # noqa: BLE001 - a failing claim is a result, not a crash
        return _timed(_result(entry, "error", error=_describe(err), method=entry.experiment, rule=module.RULE,
                              null=null, evidence="The experiment raised an error before it reached a verdict."),
                      start)
    result = _result(entry, "inconclusive", metrics=measured.metrics, key_metric=measured.key_metric,
                     evidence=measured.evidence, method=measured.method, figures=list(measured.figures),
                     rule=module.RULE, null=null)
    if measured.null_key is not None:
        result.null_value = measured.metrics.get(measured.null_key)
    result.seconds = time.perf_counter() - start
    reads = [r for r in module.READS if r not in measured.unmeasured]
    problems = [f"model {p}" for p in unreadable(measured.metrics, reads)]
    if null == NULL_TWIN:
        problems += _measure_twin(module, budget, twins or NullTwin(model), result)
    if problems:
        result.verdict = "error"
        result.error = ("the rule was not applied: a number it reads is not finite or missing "
                        f"({'; '.join(problems)})" if result.error is None else result.error)
        return result
    try:
        verdict = module.verdict(measured.metrics, result.null_metrics)
    except KeyError as err:
        if err.args and err.args[0] in measured.unmeasured:
            result.verdict, result.error = "error", (f"the rule read {err.args[0]!r}, which the experiment did not "
                                                     "measure (Measurement.unmeasured)")
            return result
        result.verdict, result.error = "error", f"the verdict rule failed: {_describe(err)}"
        return result
    except Exception as err:  # noqa: BLE001 - a broken rule is an error result, not a crash
        result.verdict, result.error = "error", f"the verdict rule failed: {_describe(err)}"
        return result
    if verdict not in RULE_VERDICTS:
        result.verdict, result.error = "error", f"verdict() returned {verdict!r}, not one of {RULE_VERDICTS}"
    else:
        result.verdict = verdict
    return result


def _measure_twin(module: ModuleType, budget: Budget, twins: NullTwin, result: ClaimResult) -> list[str]:
    """Measure the claim on the null twin into `result`; the problems that block the verdict."""
    seed_everything(budget.seed)
    start = time.perf_counter()
    null_reads = null_reads_of(module)
    try:
        twin_measured = module.measure(twins.get(), null_budget(module, budget))
    except Exception as err:  # noqa: BLE001 - no null, no verdict
        result.error = f"the null twin could not be measured: {_describe(err)}"
        return ["null twin"]
    finally:
        twins.restore()
        result.null_seconds = time.perf_counter() - start
    result.null_metrics = twin_measured.metrics
    result.null_value = twin_measured.metrics.get(result.key_metric)
    return [f"null twin {p}" for p in unreadable(twin_measured.metrics, null_reads)]



def _non_finite_weights(model) -> str | None:
    import torch

    hf = getattr(model, "hf_model", None)
    if not isinstance(hf, torch.nn.Module):
        return None
    from mechscope.model.loading import non_finite_weight

    return non_finite_weight(hf)


def _timed(result: ClaimResult, start: float) -> ClaimResult:
    result.seconds = time.perf_counter() - start
    return result


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _result(entry: CatalogueEntry, verdict: str, **fields) -> ClaimResult:
    return ClaimResult(id=entry.id, slug=entry.slug, title=entry.title, verdict=verdict,
                       reference=entry.reference, **fields)


def _describe(err: BaseException) -> str:
    """'ValueError: bad shape (at c09_induction_heads.py:42 in run)': the message and where."""
    frames = traceback.extract_tb(err.__traceback__)
    where = ""
    if frames:
        last = frames[-1]
        where = f" (at {last.filename.rsplit('/', 1)[-1]}:{last.lineno} in {last.name})"
    return f"{type(err).__name__}: {err}{where}"


def _entry_from_filename(claim_id: str, name: str) -> CatalogueEntry:
    slug = name.split("_", 1)[1].replace("_", "-")
    return CatalogueEntry(claim_id, slug, slug, "", "", "")


def _entry_from_module(module: ModuleType, name: str) -> CatalogueEntry:
    """A claim outside the catalogue describes itself through its module constants."""
    base = _entry_from_filename(str(module.ID).upper(), name)
    return CatalogueEntry(
        base.id, getattr(module, "SLUG", base.slug), getattr(module, "TITLE", base.title),
        getattr(module, "EXPERIMENT", (module.__doc__ or "").strip().split("\n\n")[0]),
        getattr(module, "READS", ""), getattr(module, "REFERENCE", ""),
    )
