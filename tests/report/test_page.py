"""The figures page every command's --html writes: self-contained, escaped, and allowed to run only its own scripts."""

from __future__ import annotations

import re

import plotly.graph_objects as go

from mechscope.report.figures import csp_hash, plotly_js
from mechscope.report.page import figures_page, write_figures_page

EVIL = "<script>alert(1)</script>"


def _figure(title: str = "f") -> go.Figure:
    return go.Figure(go.Bar(x=["a", EVIL], y=[1, 2]), layout=dict(title=title))


def test_page_inlines_plotly_and_loads_nothing_from_outside():
    page = figures_page("t", [_figure(), _figure()])
    assert plotly_js() in page
    assert "cdn" not in page.lower().replace(plotly_js().lower(), "")
    assert not re.search(r"<script[^>]*\bsrc=", page)
    assert page.count("<div class='figure'") == 2


def test_csp_allows_exactly_the_inline_scripts():
    page = figures_page("t", [_figure()])
    scripts = re.findall(r"<script>(.*?)</script>", page, flags=re.S)
    assert len(scripts) == 2
    policy = re.search(r'script-src ([^;]*);', page).group(1).split()
    assert sorted(policy) == sorted(csp_hash(s) for s in scripts)


def test_title_notes_and_figure_strings_cannot_open_tags():
    page = figures_page(EVIL, [_figure(EVIL)], notes=[EVIL])
    without_plotly = page.replace(plotly_js(), "")
    assert EVIL not in without_plotly
    assert without_plotly.count("<script") == 3  # data block, plotly.js, loader


def test_page_without_figures_has_no_scripts(tmp_path):
    path = write_figures_page(tmp_path / "p.html", "empty", [], notes=["nothing to draw"])
    page = path.read_text()
    assert "<script" not in page and "script-src 'none'" in page and "nothing to draw" in page
