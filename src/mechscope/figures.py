"""Figure text shared by analyses and the report: escaping model-derived strings (token strings, prompts).

The report's HTML template escapes every string it prints (jinja2 autoescape), so evidence,
method and metrics text need nothing from claim authors. Plotly figures are different: plotly.js
renders a subset of HTML inside figure text (titles, axis labels, tick labels of categorical
axes, `text`, `hovertext`, annotations, legend names), so a token such as ``<b>`` or
``<script>alert(1)</script>`` would be read as markup and lost, or shown garbled. Plotly never
runs scripts from figure text, and the report's Content-Security-Policy refuses any inline
script it did not write, but for the token to *show as itself* a claim must pass it through
`safe_token` before putting it in a figure::

    from mechscope.figures import safe_token, safe_tokens
    fig = go.Figure(go.Heatmap(z=pattern, x=safe_tokens(str_tokens), y=safe_tokens(str_tokens)))
    fig.update_layout(title=f"attention of head 1.4 on {safe_token(prompt)}")

Escape once: the result is meant for figure text only. Do not escape strings that go into
ClaimResult.evidence / method / metrics; the template does that.
"""

from __future__ import annotations

import html
from collections.abc import Iterable

# Invisible or layout-breaking characters get a visible stand-in, so that " the" and "the" and
# "\n" are told apart in a tick label.
_VISIBLE = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def safe_token(text: object, *, show_whitespace: bool = False) -> str:
    """`text` as plotly figure text that displays literally: <, >, &, quotes become entities.

    show_whitespace: also write newlines/tabs as \\n, \\t and a leading space as "·" (useful
    for token strings on an axis).
    """
    s = str(text)
    if show_whitespace:
        s = "".join(_VISIBLE.get(ch, ch) for ch in s)
        if s.startswith(" "):
            s = "·" + s[1:]
    return html.escape(s, quote=True)


def safe_tokens(texts: Iterable[object], *, show_whitespace: bool = False) -> list[str]:
    """safe_token on each string of a list (e.g. the str_tokens of a prompt for an axis)."""
    return [safe_token(t, show_whitespace=show_whitespace) for t in texts]
