"""Find the claim modules, merge them with the catalogue, and run them one after another.

A claim module is any module ``mechscope.claims.cNN_<slug>`` (found with pkgutil, so a new claim
needs no registration). Every catalogue entry is listed: one without a module yields a
"not implemented" result. A claim that raises yields an "error" result with its message and the
others still run; a claim that raises `NotApplicableError` yields "not applicable" with the reason.

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

from mechscope.claims.base import Budget, ClaimResult
from mechscope.claims.catalogue import CATALOGUE, CatalogueEntry
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
        module_id = str(getattr(module, "ID", claim_id)).upper()
        if module_id != claim_id or not callable(getattr(module, "run", None)):
            entry = specs.get(claim_id, ClaimSpec(_entry_from_filename(claim_id, info.name))).entry
            specs[claim_id] = ClaimSpec(entry, import_error=(
                f"{info.name} must define ID = {claim_id!r} (found {module_id!r}) and run(model, budget)"))
            continue
        entry = specs[claim_id].entry if claim_id in specs else _entry_from_module(module, info.name)
        specs[claim_id] = ClaimSpec(entry, module=module)
    return [specs[key] for key in sorted(specs)]


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
               specs: list[ClaimSpec] | None = None) -> list[ClaimResult]:
    """Run the selected claims on `model` (a HookedModel) in id order; one ClaimResult each.

    ids: "C01,C09", ["C01", "C09"] or None for every claim (those without a module included).

    Each claim is seeded with budget.seed (torch, numpy, random) just before it runs, so its result
    does not depend on which claims ran before it. Never raises for a failing claim.
    """
    budget = budget or Budget.named("quick")
    chosen = select(specs if specs is not None else discover(), parse_ids(ids))
    guard = ModelGuard(model)
    results = []
    for index, spec in enumerate(chosen, start=1):
        if on_progress:
            on_progress(index, len(chosen), spec, None)
        result = run_one(model, spec, budget)
        if spec.module is not None:
            problem = guard.check_and_restore()
            if problem:
                result.error = f"{result.error}; {problem}" if result.error else problem
        results.append(result)
        if on_progress:
            on_progress(index, len(chosen), spec, result)
    return results


def run_one(model, spec: ClaimSpec, budget: Budget) -> ClaimResult:
    """Run one claim, turning every way it can fail into a ClaimResult."""
    entry = spec.entry
    if spec.import_error is not None:
        return _result(entry, "error", error=spec.import_error,
                       evidence="The claim module could not be loaded, so the experiment did not run.")
    if spec.module is None:
        return _result(entry, "not implemented",
                       evidence="This experiment is not built yet.", method=entry.experiment)
    seed_everything(budget.seed)
    start = time.perf_counter()
    try:
        result = spec.module.run(model, budget)
        if not isinstance(result, ClaimResult):
            raise TypeError(f"run() returned {type(result).__name__}, not a ClaimResult")
    except NotApplicableError as err:
        result = _result(entry, "not applicable", evidence=str(err), method=entry.experiment)
    except Exception as err:  # noqa: BLE001 - a failing claim is a result, not a crash
        result = _result(entry, "error", error=_describe(err), method=entry.experiment,
                         evidence="The experiment raised an error before it reached a verdict.")
    result.seconds = time.perf_counter() - start
    if not result.reference:
        result.reference = entry.reference
    return result


class ModelGuard:
    """Undo what a claim may leave changed on the shared model: weights, train/eval mode, grad mode.

    Claims should leave the model as they found it (a layer-swap experiment swaps back); this
    catches the ones that do not, so one claim cannot silently change the next one's numbers.
    Weights are compared by a per-tensor checksum; for models up to SNAPSHOT_MAX_PARAMS a CPU copy
    taken at the start restores them.
    """

    SNAPSHOT_MAX_PARAMS = 300_000_000

    def __init__(self, model):
        import torch

        self.hf = getattr(model, "hf_model", None)
        if not isinstance(self.hf, torch.nn.Module):
            self.hf = None
            return
        self.training = self.hf.training
        self.grad_enabled = torch.is_grad_enabled()
        self.fingerprint = self._fingerprint()
        self.snapshot = None
        if sum(p.numel() for p in self.hf.parameters()) <= self.SNAPSHOT_MAX_PARAMS:
            self.snapshot = {k: v.detach().to("cpu", copy=True) for k, v in self.hf.state_dict().items()}

    def _fingerprint(self) -> dict[str, tuple[float, float]]:
        import torch

        with torch.no_grad():
            return {k: (float(v.double().sum()), float(v.double().abs().sum()))
                    for k, v in self.hf.state_dict().items() if v.is_floating_point()}

    def check_and_restore(self) -> str | None:
        """None when the model is as it was; else what changed (restored when possible)."""
        import torch

        if self.hf is None:
            return None
        torch.set_grad_enabled(self.grad_enabled)
        self.hf.train(self.training)
        for p in self.hf.parameters():
            p.grad = None
        if self._fingerprint() == self.fingerprint:
            return None
        if self.snapshot is not None:
            try:
                self.hf.load_state_dict(self.snapshot, strict=True)
                if self._fingerprint() == self.fingerprint:
                    return "the experiment left the model's weights changed; mechscope restored them"
            except Exception:  # noqa: BLE001 - reported below
                pass
        self.fingerprint = self._fingerprint()  # blame this claim only, not every later one
        return ("the experiment changed the model's weights and they could not be restored: "
                "the claims after it ran on a changed model")


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _result(entry: CatalogueEntry, verdict: str, **fields) -> ClaimResult:
    return ClaimResult(id=entry.id, slug=entry.slug, title=entry.title, verdict=verdict,
                       reference=entry.reference, rule="", **fields)


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

