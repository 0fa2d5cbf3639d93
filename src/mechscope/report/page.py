"""A self-contained HTML page of plotly figures, for every command that writes `--html`.

It is the report's page without the claims: plotly.js inline (from the installed plotly package,
so the page works offline), figure data in one JSON data block drawn by the report's loader, and
the same Content-Security-Policy that lets exactly those two scripts run. Titles and notes are
escaped; tokens inside figures should go through `mechscope.report.escape.safe_tokens`.

    write_figures_page("heads.html", "Head scores", [result.figure()], notes=["16 sequences"])
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mechscope.io import write_text_atomic
from mechscope.report import figures as figs

_STYLE = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
          ".figure{width:100%;min-height:420px;margin:.6rem 0}"
          ".figure-error{color:#8250df;background:#fbefff;padding:.6rem;white-space:pre-wrap}")


def figures_page(title: str, figures: Sequence[Any], notes: Sequence[str] = ()) -> str:
    """The page as one string. figures: plotly Figures (or Results with figure(), or plotly dicts)."""
    data = {f"fig-{i}": figs.figure_json(fig) for i, fig in enumerate(figures)}
    scripts = (figs.plotly_js(), figs.LOADER_JS) if data else ()
    csp = " ".join(figs.csp_hash(s) for s in scripts) or "'none'"
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src {csp}; "
        "style-src 'unsafe-inline'; img-src data: blob:; font-src data:; base-uri 'none'; form-action 'none'\">",
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>",
        f"<body><h1>{html.escape(title)}</h1>",
        *(f"<p>{html.escape(note)}</p>" for note in notes),
        *(f"<div class='figure' id='{div_id}'></div>" for div_id in data),
    ]
    if data:
        parts += [f"<script type='application/json' id='mechscope-figures'>{figs.figures_block(data)}</script>",
                  *(f"<script>{s}</script>" for s in scripts)]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_figures_page(path: str | Path, title: str, figures: Sequence[Any], notes: Sequence[str] = ()) -> Path:
    """Write `figures_page(...)` to `path` atomically; returns the path."""
    return write_text_atomic(path, figures_page(title, figures, notes))
