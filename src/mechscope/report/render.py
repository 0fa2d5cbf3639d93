"""Turn claim results into the report: one self-contained HTML page and one JSON file.

Usage::

    report = build_report(model, results, budget=budget, started=t0, seconds=dt, spec=spec)
    write_html(report, "report.html"); write_json(report, "report.json")

The HTML works offline (plotly.js inline, once; figures inline) and shows: a summary table, a
model card, run metadata, and a section per claim with figures, evidence, method, rule and
metrics. Every string is escaped by the template (autoescape); figure data sits in a JSON data
block; a Content-Security-Policy allows only the page's own two scripts.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import jinja2

from mechscope.claims.base import VERDICTS, Budget, ClaimResult
from mechscope.claims.catalogue import BY_ID
from mechscope.io import write_json_atomic, write_text_atomic
from mechscope.report import figures as figs
from mechscope.report.format import VERDICT_COLOURS, finite_json, flatten_metrics, format_value
from mechscope.report.metadata import model_card, run_metadata

SCHEMA = "mechscope-report/2"


@dataclasses.dataclass
class Report:
    """Everything a report shows. model: the model card; run: run metadata; results: one per claim."""

    model: dict[str, Any]
    run: dict[str, Any]
    results: list[ClaimResult]

    @property
    def model_results(self) -> list[ClaimResult]:
        """The claims about this model: every result except the model-independent experiments."""
        return [r for r in self.results if not r.model_independent]

    @property
    def independent_results(self) -> list[ClaimResult]:
        """Experiments that do not depend on the model (NULL == "none"): shown apart, outside the tally."""
        return [r for r in self.results if r.model_independent]

    def summary(self) -> dict[str, int]:
        """{verdict: number of claims about the model}, in the order of VERDICTS, zero counts left out."""
        return _counts(self.model_results)

    def to_dict(self) -> dict[str, Any]:
        """The JSON file: strict JSON (NaN and ±inf become null)::

            {"schema": "mechscope-report/2",
             "model": {"spec", "name", "arch", "n_layers", "d_model", …, "n_params", "n_hooks", "tokenizer"},
             "run": {"started_utc", "seconds", "seed", "budget": {…}, "claims_requested", "command",
                     "versions": {"mechscope", "torch", "transformers", …}},
             "summary": {verdict: count},                 # claims about the model only
             "model_independent_summary": {verdict: count},   # experiments that ignore the model
             "claims": [{"id": "C09", "slug", "title", "verdict", "model_independent", "metrics": {…},
                         "key_metric", "key_value", "key_ci95", "null", "null_value", "null_metrics",
                         "evidence", "method", "rule", "reference", "seconds", "null_seconds", "error",
                         "n_figures"}]}
        """
        claims = []
        for r in self.results:
            entry = r.to_dict()
            entry["key_value"] = r.key_value
            entry["n_figures"] = len(r.figures)
            claims.append(entry)
        return finite_json({"schema": SCHEMA, "model": self.model, "run": self.run,
                            "summary": self.summary(),
                            "model_independent_summary": _counts(self.independent_results),
                            "claims": claims})


def _counts(results: list[ClaimResult]) -> dict[str, int]:
    counts = Counter(r.verdict for r in results)
    return {v: counts[v] for v in VERDICTS if counts[v]}


def build_report(model, results: list[ClaimResult], *, budget: Budget, started: dt.datetime,
                 seconds: float, spec: str | None = None, claim_ids: list[str] | None = None,
                 command: str | None = None) -> Report:
    return Report(model=model_card(model, spec),
                  run=run_metadata(budget, started, seconds, claim_ids=claim_ids, command=command),
                  results=list(results))


def write_json(report: Report, path: str | Path) -> Path:
    return _shareable(write_json_atomic(path, report.to_dict()))


def write_html(report: Report, path: str | Path) -> Path:
    return _shareable(write_text_atomic(path, render_html(report)))


def _shareable(path: Path) -> Path:
    """Give the file the permissions of any new file (umask), not the temp file's private 0600."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)
    return path


def render_html(report: Report) -> str:
    """The whole page as one string (about 5 MB with figures: plotly.js is most of it)."""
    figure_data: dict[str, str] = {}  # div id -> figure JSON, filled by _section
    sections = [_section(result, figure_data) for result in report.results]
    model_sections = [s for s in sections if not s["r"].model_independent]
    independent_sections = [s for s in sections if s["r"].model_independent]
    plotly_js, loader_js = (figs.plotly_js(), figs.LOADER_JS) if figure_data else ("", "")
    scripts = [s for s in (plotly_js, loader_js) if s]
    context = {
        "title": f"mechscope report: {report.model.get('name') or report.model.get('spec') or 'model'}",
        "model_rows": [(k, format_value(v)) for k, v in report.model.items()],
        "run": report.run,
        "run_rows": _run_rows(report.run),
        "summary": report.summary(),
        "model_sections": model_sections,
        "independent_sections": independent_sections,
        "independent_summary": _counts(report.independent_results),
        "colours": VERDICT_COLOURS,
        "plotly_js": plotly_js,
        "loader_js": loader_js,
        "figures_json": figs.figures_block(figure_data) if figure_data else "",
        "csp_scripts": " ".join(figs.csp_hash(s) for s in scripts) or "'none'",
    }
    return _environment().get_template("report.html.j2").render(**context)


def _section(result: ClaimResult, figure_data: dict[str, str]) -> dict[str, Any]:
    entry = BY_ID.get(result.id)
    anchor = _anchor(result.id)
    embedded, figure_errors = [], []
    for i, fig in enumerate(result.figures):
        div_id = f"fig-{anchor}-{i}"
        try:
            fig_json = figs.figure_json(fig)
        except Exception as err:  # noqa: BLE001 - one bad figure must not cost the page
            figure_errors.append(f"figure {i + 1}: {type(err).__name__}: {err}")
            continue
        figure_data[div_id] = fig_json
        embedded.append(figs.EmbeddedFigure(div_id=div_id, title=figs.figure_title(fig_json)))
    return {
        "r": result,
        "anchor": anchor,
        "experiment": entry.experiment if entry else "",
        "reads": entry.reads if entry else "",
        "key": key_text(result),
        "null_text": null_text(result),
        "null_description": NULL_DESCRIPTIONS.get(result.null, result.null),
        "note": _shorten(result.error or (result.evidence if result.verdict == "not applicable" else "")),
        "metric_rows": flatten_metrics(result.metrics),
        "null_rows": flatten_metrics(result.null_metrics) if result.null_metrics else [],
        "figures": embedded,
        "figure_errors": figure_errors,
    }


NULL_DESCRIPTIONS = {
    "twin": "the same experiment on a twin of the model with re-initialised weights (same config and tokenizer, "
            "the architecture's own initialisation, fixed seed)",
    "none": "none: the experiment does not depend on the model",
}


def key_text(result: ClaimResult) -> str:
    """'faithfulness = 0.91 [0.85, 0.95]': the key metric with its 95% interval when it has one."""
    value = result.key_value
    if not result.key_metric or value is None:
        return ""
    interval = result.key_interval
    ci = f" [{format_value(interval[0])}, {format_value(interval[1])}]" if isinstance(interval, list | tuple) \
        and len(interval) == 2 else ""
    return f"{result.key_metric} = {format_value(value)}{ci}"


def null_text(result: ClaimResult) -> str:
    """'twin: 1.04' / 'null: 0.52': the null's value of the key metric, shown beside it."""
    if result.null_value is None or result.model_independent or not result.null:
        return ""
    return f"{'twin' if result.null == 'twin' else 'null'}: {format_value(result.null_value)}"


def _shorten(text: str, limit: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _run_rows(run: dict[str, Any]) -> list[tuple[str, str]]:
    rows = []
    for key, value in run.items():
        if key == "versions":
            rows.append(("versions", ", ".join(f"{k} {v}" for k, v in value.items())))
        elif key == "budget":
            rows.append(("budget", ", ".join(f"{k}={v}" for k, v in value.items())))
        elif value is not None:
            rows.append((key, format_value(value)))
    return rows


def _anchor(claim_id: str) -> str:
    return re.sub(r"[^a-z0-9-]", "-", claim_id.lower())


_ENV: jinja2.Environment | None = None


def _environment() -> jinja2.Environment:
    global _ENV
    if _ENV is None:
        _ENV = jinja2.Environment(
            loader=jinja2.PackageLoader("mechscope.report", "templates"),
            autoescape=True,  # every string on the page is escaped unless marked |safe
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
    return _ENV
