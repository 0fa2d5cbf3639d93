"""The claim contract: what a claim module defines, what an experiment returns, and the budgets.

A claim module (``claims/cNN_slug.py``) defines::

    ID = "C09"                          # title, slug and reference live only in claims/catalogue.py
    RULE = "supported if ... by a margin of ... over the null; not supported if ...; else inconclusive"
    NULL = "twin"                       # the null the rule reads the model against (see below)
    READS = ("max_induction_score", ...)  # the metric keys verdict() reads
    NULL_READS = ("loss_drop", ...)     # optional, NULL == "twin": the keys verdict() reads from the null

    def measure(model, budget: Budget) -> Measurement: ...
    def verdict(metrics: dict, null: dict | None) -> str: ...

NULL is "twin" when the runner should also measure a twin of the model whose weights are
re-initialised (claims/null_twin.py) and pass the twin's metrics to verdict() as `null`; "none" for
an experiment that does not depend on the model (kept out of the model's tally); or a sentence
naming a stronger null that measure() computes itself (shuffled labels, a random-growth fit), whose
value then sits in the model's own metrics (Measurement.null_key names it).

measure() raises `mechscope.errors.NotApplicableError("why")` when the model lacks what the
experiment needs. verdict() is a pure function of numbers; the runner gives "error" instead of
calling it when any number under READS (in the model's metrics, or under NULL_READS in the null's;
NULL_READS defaults to READS) is not finite.

The twin is measured with budget.reads = NULL_READS: a claim skips the work behind metrics that the
rule never reads from the null (`budget.reads_any`), e.g. the circuit search of a behaviour whose
twin only needs its logit difference. tests/claims/test_contract.py checks NULL_READS against the
keys verdict() subscripts on `null`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Any, Literal

from mechscope.io import to_jsonable

Verdict = Literal["supported", "not supported", "inconclusive", "not applicable", "not implemented", "error"]
VERDICTS: tuple[str, ...] = ("supported", "not supported", "inconclusive", "not applicable", "not implemented", "error")
RULE_VERDICTS: tuple[str, ...] = ("supported", "not supported", "inconclusive")  # what verdict() may return
NULL_TWIN, NULL_NONE = "twin", "none"


@dataclasses.dataclass(frozen=True)
class Budget:
    """How much work a claim may do. `quick` keeps the whole report within ~5 min on 2 CPU cores."""

    name: str = "quick"
    n_prompts: int = 32          # prompts per task
    seq_len: int = 64            # tokens per sequence for text-based measurements
    n_sequences: int = 16        # sequences of natural text
    train_steps: int = 200       # steps for anything trained inside a claim (tuned lens, SAE, fine-tune)
    seed: int = 0
    max_layers: int | None = 8   # per-layer sweeps visit at most this many layers (None: every layer)
    max_latents: int | None = 2048       # dictionaries trained inside a claim have at most this many latents
    max_graph_features: int | None = 512  # attribution graphs compute at most this many features' rows, by influence
    reads: tuple[str, ...] | None = None  # the metrics the caller reads (None: all); the twin's run: NULL_READS

    def layers(self, n_layers: int) -> list[int]:
        """The layers a per-layer sweep visits: all of them when n_layers <= max_layers, else max_layers
        evenly spaced ones that always include the first and the last (sorted, distinct)."""
        if self.max_layers is None or n_layers <= self.max_layers:
            return list(range(n_layers))
        if self.max_layers < 2:
            return [0, n_layers - 1][: max(self.max_layers, 1)]
        step = (n_layers - 1) / (self.max_layers - 1)
        return sorted({round(i * step) for i in range(self.max_layers)})

    def reads_any(self, *metrics: str) -> bool:
        """True when the caller reads any of `metrics` (always when reads is None): a claim skips the work
        behind metrics nobody reads, as on the null twin, whose run reads only the claim's NULL_READS."""
        return self.reads is None or any(m in self.reads for m in metrics)

    def latents(self, d_in: int, expansion: int) -> int:
        """Latents of a dictionary over d_in-dimensional activations: expansion x d_in, at most max_latents
        (the organisms' 128-d dictionaries stay under the cap; a 768-d model's shrink from 6144 to 2048)."""
        wanted = expansion * d_in
        return wanted if self.max_latents is None else min(wanted, self.max_latents)

    def exact_heads(self, n_layers: int, n_heads: int) -> int | None:
        """How many heads a per-head patching sweep patches exactly after an attribution screen
        (patching/screened.py): None (every head, no screen) when n_layers <= max_layers, else as many
        heads as a max_layers-deep model has, which keeps the sweep linear in depth."""
        if self.max_layers is None or n_layers <= self.max_layers:
            return None
        return self.max_layers * n_heads

    @classmethod
    def named(cls, name: str) -> Budget:
        if name == "quick":
            return cls()
        if name == "full":
            return cls(name="full", n_prompts=128, seq_len=128, n_sequences=64, train_steps=2000, max_layers=None,
                       max_latents=None, max_graph_features=None)
        from mechscope.errors import InputError

        raise InputError(f"unknown budget {name!r}: use 'quick' or 'full'")


def null_reads_of(module) -> tuple[str, ...]:
    """The metrics a claim's rule reads from its null twin: NULL_READS, by default READS."""
    return tuple(getattr(module, "NULL_READS", module.READS))


def null_budget(module, budget: Budget) -> Budget:
    """The budget the claim runs under on its null twin: `budget`, reading only NULL_READS."""
    return dataclasses.replace(budget, reads=null_reads_of(module))


@dataclasses.dataclass
class Measurement:
    """What one run of a claim's experiment on one model returns (CONTRACTS.md A).

    metrics: JSON-able numbers; a metric that is a mean over prompts may carry its 95% bootstrap
        interval as metrics[f"{name}_ci95"] = [low, high] (mechscope.stats.bootstrap_ci).
    key_metric: the metric shown in the summary table, with the null's value beside it.
    null_key: for a claim whose NULL is a sentence: the metric holding the null's value of key_metric.
    unmeasured: keys of READS the experiment did not measure because the rule is decided without them
        (no behaviour, so no circuit to search); they are absent from metrics, and a verdict() that reads
        one gives "error", so skipping work can never decide a verdict.
    """

    metrics: dict[str, Any]
    key_metric: str
    evidence: str = ""
    method: str = ""
    figures: list = dataclasses.field(default_factory=list)
    null_key: str | None = None
    unmeasured: tuple[str, ...] = ()


def non_finite(value: Any) -> bool:
    """True when `value` (a number, or a list/dict of them) holds NaN, ±inf or None anywhere."""
    if value is None:
        return True
    if isinstance(value, bool | str):
        return False
    if isinstance(value, int | float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(non_finite(v) for v in value.values())
    if isinstance(value, Iterable):
        return any(non_finite(v) for v in value)
    try:
        return not math.isfinite(float(value))  # numpy / torch scalars
    except (TypeError, ValueError):
        return False


def unreadable(metrics: dict[str, Any], reads: Iterable[str]) -> list[str]:
    """'name=value' for every key in `reads` that is missing from `metrics` or not finite."""
    bad = []
    for key in reads:
        if key not in metrics:
            bad.append(f"{key} missing")
        elif non_finite(to_jsonable(metrics[key])):
            bad.append(f"{key}={metrics[key]!r}")
    return bad


@dataclasses.dataclass
class ClaimResult:
    """The outcome of one claim on one model, as the report shows it.

    metrics / key_metric / evidence / method / figures: from the model's Measurement.
    null: which null the rule reads ("twin", "none" or the sentence naming a stronger null).
    null_metrics: the twin's metrics (NULL == "twin"), else None.
    null_value: the null's value of key_metric (the twin's, or metrics[null_key]), shown beside it.
    rule: the verdict rule in words (the module's RULE).
    """

    id: str
    slug: str
    title: str
    verdict: Verdict
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    key_metric: str | None = None
    evidence: str = ""
    method: str = ""
    rule: str = ""
    reference: str = ""
    figures: list[Any] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None
    null: str = ""
    null_metrics: dict[str, Any] | None = None
    null_value: Any = None
    null_seconds: float = 0.0

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")

    @property
    def model_independent(self) -> bool:
        """The experiment ignores the model (NULL == "none"): kept out of the model's tally."""
        return self.null == NULL_NONE

    @property
    def key_value(self) -> Any:
        return self.metrics.get(self.key_metric) if self.key_metric else None

    @property
    def key_interval(self) -> Any:
        """[low, high] 95% interval of the key metric when the claim measured one, else None."""
        return self.metrics.get(f"{self.key_metric}_ci95") if self.key_metric else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "slug": self.slug,
            "title": self.title,
            "verdict": self.verdict,
            "model_independent": self.model_independent,
            "metrics": to_jsonable(self.metrics),
            "key_metric": self.key_metric,
            "key_ci95": to_jsonable(self.key_interval),
            "null": self.null,
            "null_value": to_jsonable(self.null_value),
            "null_metrics": to_jsonable(self.null_metrics),
            "evidence": self.evidence,
            "method": self.method,
            "rule": self.rule,
            "reference": self.reference,
            "seconds": round(self.seconds, 3),
            "null_seconds": round(self.null_seconds, 3),
            "error": self.error,
        }
