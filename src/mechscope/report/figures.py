"""Figures for the report: plotly Figures to inline JSON, and plotly.js itself, once.

The page carries plotly.js inline (from the installed plotly package, so it works offline) and
every figure as JSON in one non-executable ``<script type="application/json">`` block that a
small loader script hands to ``Plotly.newPlot``. Keeping figure data out of executable scripts
lets the page's Content-Security-Policy allow exactly two scripts (plotly.js and the loader, by
hash) and nothing else.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from functools import lru_cache
from typing import Any

# The loader: draw each figure; a figure that fails shows its error in place of the plot and
# does not stop the others.
LOADER_JS = """
(function () {
  var data = JSON.parse(document.getElementById("mechscope-figures").textContent);
  var config = {displaylogo: false, responsive: true};
  Object.keys(data).forEach(function (id) {
    var div = document.getElementById(id);
    if (!div) { return; }
    try {
      Plotly.newPlot(div, data[id].data || [], data[id].layout || {}, config);
    } catch (err) {
      div.textContent = "figure failed to render: " + err;
      div.className += " figure-error";
    }
  });
}());
""".strip()


@dataclasses.dataclass
class EmbeddedFigure:
    """One figure of a claim: the div id it is drawn into, and its title for the page outline."""

    div_id: str
    title: str


@lru_cache(maxsize=1)
def plotly_js() -> str:
    """The plotly.js bundle shipped inside the installed plotly package (about 4.8 MB)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def figure_json(fig: Any) -> str:
    """A plotly Figure (or a Result with figure(), or a plotly dict) as JSON safe inside <script>.

    <, >, / and & are written as \\u escapes, so no string in a figure can close the script element
    it sits in. Keys are sorted: the same figure gives the same text however it was built (a Figure
    that went through pickle, as under torchrun, or to_dict() orders its keys differently).
    """
    import plotly.graph_objects as go
    import plotly.io as pio

    if not isinstance(fig, (go.Figure, dict)) and callable(getattr(fig, "figure", None)):
        fig = fig.figure()
    if isinstance(fig, dict):
        fig = go.Figure(fig)
    if not isinstance(fig, go.Figure):
        raise TypeError(f"expected a plotly Figure, got {type(fig).__name__}")
    text = json.dumps(json.loads(pio.to_json(fig, validate=False)), sort_keys=True, separators=(",", ":"))
    return text.translate(_SCRIPT_SAFE)


# these characters only ever occur inside JSON strings, where their \u escapes mean the same
_SCRIPT_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "/": "\\u002f", "&": "\\u0026"})


def figure_title(fig_json: str) -> str:
    title = json.loads(fig_json).get("layout", {}).get("title", "")
    if isinstance(title, dict):
        title = title.get("text", "")
    return str(title or "")


def figures_block(figures: dict[str, str]) -> str:
    """{div_id: figure JSON} as one JSON object for the data block; every '<' escaped.

    JSON only has '<' inside strings, where \\u003c means the same character.
    """
    body = ",".join(f"{json.dumps(div_id)}:{fig_json}" for div_id, fig_json in figures.items())
    return ("{" + body + "}").replace("<", "\\u003c")


def csp_hash(script: str) -> str:
    """The CSP source expression ('sha256-…') that allows exactly this inline script."""
    digest = hashlib.sha256(script.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"
