"""What a claim experiment returns, and the budgets it runs under.

A claim module (``claims/cNN_slug.py``) exposes::

    ID = "C09"; SLUG = "induction-heads"; TITLE = "Some heads implement induction"
    def run(model: HookedModel, budget: Budget) -> ClaimResult

Its verdict comes from a rule written next to the numbers it reads (a small function in the same
module), the same for every model. Never a verdict per model.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from mechscope.io import to_jsonable

Verdict = Literal["supported", "not supported", "inconclusive", "not applicable", "not implemented", "error"]
VERDICTS: tuple[str, ...] = ("supported", "not supported", "inconclusive", "not applicable", "not implemented", "error")


@dataclasses.dataclass(frozen=True)
class Budget:
    """How much work a claim may do. `quick` keeps the whole report within ~5 min on 2 CPU cores."""

    name: str = "quick"
    n_prompts: int = 32          # prompts per task
    seq_len: int = 64            # tokens per sequence for text-based measurements
    n_sequences: int = 16        # sequences of natural text
    train_steps: int = 200       # steps for anything trained inside a claim (tuned lens, SAE, fine-tune)
    seed: int = 0

    @classmethod
    def named(cls, name: str) -> Budget:
        if name == "quick":
            return cls()
        if name == "full":
            return cls(name="full", n_prompts=128, seq_len=128, n_sequences=64, train_steps=2000)
        from mechscope.errors import InputError

        raise InputError(f"unknown budget {name!r}: use 'quick' or 'full'")


@dataclasses.dataclass
class ClaimResult:
    """The outcome of one claim experiment on one model.

    metrics: flat-ish dict of the key numbers (JSON-able).
    key_metric: name of the metric shown in the summary table (a key of metrics).
    figures: plotly Figures, shown in order in the report.
    evidence: two or three sentences that say what was measured and what it shows.
    method: how the experiment was run (one paragraph).
    rule: the verdict rule in words, e.g. "supported if tuned-lens KL <= logit-lens KL at every layer".
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

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")

    @property
    def key_value(self) -> Any:
        return self.metrics.get(self.key_metric) if self.key_metric else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "slug": self.slug,
            "title": self.title,
            "verdict": self.verdict,
            "metrics": to_jsonable(self.metrics),
            "key_metric": self.key_metric,
            "evidence": self.evidence,
            "method": self.method,
            "rule": self.rule,
            "reference": self.reference,
            "seconds": round(self.seconds, 3),
            "error": self.error,
        }
