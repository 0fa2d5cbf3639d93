"""The report in a real browser (headless Chromium through Playwright, every network request refused):
no JavaScript errors, figures render, and a hostile token planted in a model's vocabulary shows as
text and never runs.

Needs Debian's chromium (`.ci/install-chromium.sh`, or $MECHSCOPE_CHROMIUM) and the playwright package;
skipped without them.
"""

from __future__ import annotations

import datetime as dt

import plotly.graph_objects as go
import pytest
import torch

from mechscope.claims.base import Budget, ClaimResult
from mechscope.report import build_report, render_html
from mechscope.report.escape import safe_token, safe_tokens
from tests.helpers import OfflinePage
from tests.report.conftest import EVIL

IMG = "<img src=x onerror=alert(2)>"
ALL_DRAWN = "Array.from(document.querySelectorAll('div.figure')).every(d => d.querySelector('.main-svg'))"

pytestmark = pytest.mark.browser


def token_claim(model) -> ClaimResult:
    """A claim-like experiment that reads the planted token out of the model's own vocabulary."""
    vocab = model.tokenizer.get_vocab()
    planted = [tok for tok in vocab if "<script>" in tok]
    assert planted == [EVIL]
    tokens = model.to_tokens(f"hi {EVIL} there")
    str_tokens = model.to_str_tokens(tokens[0])
    assert EVIL in str_tokens
    _, cache = model.run_with_cache(tokens, names=["blocks.0.attn.hook_pattern"])
    pattern = cache["blocks.0.attn.hook_pattern"][0, 0]
    heatmap = go.Figure(go.Heatmap(z=pattern.tolist(), x=safe_tokens(str_tokens), y=safe_tokens(str_tokens),
                                   hovertext=[safe_tokens(str_tokens)] * len(str_tokens)),
                        layout=dict(title=f"head 0.0 on {safe_token(EVIL)}"))
    # a claim author who forgot safe_token: the page must still be safe
    raw = go.Figure(go.Bar(x=[EVIL, IMG], y=[1, 2], text=[EVIL, IMG]), layout=dict(title=EVIL))
    return ClaimResult("C09", "induction-heads", f"Tokens like {EVIL}", "inconclusive",
                       metrics={"token": EVIL, "other": IMG, "n_tokens": len(str_tokens)}, key_metric="token",
                       evidence=f"The model saw {EVIL} and {IMG}.", method=IMG, rule=EVIL,
                       figures=[heatmap, raw], error=None)


@pytest.fixture(scope="module")
def report_file(tmp_path_factory, planted_model):
    torch.manual_seed(0)
    results = [token_claim(planted_model)]
    results.append(ClaimResult("C02", "norm-growth", "boom", "error", error=f"ValueError: {EVIL}"))
    rep = build_report(planted_model, results, budget=Budget(), started=dt.datetime.now(dt.timezone.utc),
                       seconds=1.0)
    path = tmp_path_factory.mktemp("browser") / "report.html"
    path.write_text(render_html(rep), encoding="utf-8")
    return path


def test_page_loads_without_errors_and_figures_render(browser, report_file):
    page = OfflinePage(browser).open(report_file)
    n_divs = page.evaluate("document.querySelectorAll('div.figure').length")
    assert n_divs == 2
    assert page.wait_for(ALL_DRAWN, timeout=60), "plotly did not draw the figures"
    drawn = page.evaluate("Array.from(document.querySelectorAll('div.figure')).map("
                          "d => d.querySelectorAll('.main-svg').length > 0 && d.querySelectorAll('.overplot image, .overplot path').length > 0)")
    assert drawn == [True, True]
    page.settle(0.3)
    assert page.errors == []
    assert page.dialogs == []


def test_planted_token_shows_as_text_and_does_not_run(browser, report_file):
    page = OfflinePage(browser).open(report_file)
    assert page.wait_for(ALL_DRAWN, timeout=60)
    page.settle(0.3)
    assert page.dialogs == [], "a planted token ran as script"
    assert page.errors == []
    # only the page's own scripts exist in the DOM; no element was made from a token
    assert page.evaluate("document.querySelectorAll('script').length") == 3
    assert page.evaluate("document.querySelectorAll('img').length") == 0
    text = page.evaluate("document.body.innerText")
    assert f"The model saw {EVIL} and {IMG}." in text
    assert page.evaluate("document.querySelector('h1').textContent").endswith(EVIL)  # model name
    cells = page.evaluate("Array.from(document.querySelectorAll('table.metrics td')).map(td => td.textContent)")
    assert EVIL in cells and IMG in cells
    # figure text: escaped tokens on the heatmap axis and title show literally
    ticks = page.evaluate("Array.from(document.querySelectorAll('#fig-c09-0 .xtick text')).map(t => t.textContent)")
    assert EVIL in ticks
    assert page.evaluate("document.querySelector('#fig-c09-0 .gtitle').textContent") == f"head 0.0 on {EVIL}"


def test_harness_sees_a_script_that_runs(browser, tmp_path):
    """Control: the checks above can fail. An unescaped page runs alert() and throws; both are seen."""
    bad = tmp_path / "bad.html"
    bad.write_text(f"<html><body><p>{EVIL}</p><script>throw new Error('oops')</script></body></html>")
    page = OfflinePage(browser).open(bad)
    page.settle(0.3)
    assert page.dialogs == ["1"]
    assert any("oops" in e for e in page.errors)


def test_harness_sees_a_page_that_needs_the_network(browser, tmp_path):
    """Control: a page that loads plotly from a CDN (as `heads --html` once did) is caught offline."""
    cdn = tmp_path / "cdn.html"
    cdn.write_text('<html><body><script src="https://cdn.plot.ly/plotly-2.35.2.min.js"></script>'
                   '<script>Plotly.newPlot(document.body, [])</script></body></html>')
    page = OfflinePage(browser).open(cdn)
    page.settle(0.3)
    assert any("network request refused" in e and "cdn.plot.ly" in e for e in page.errors)
    assert any("Plotly is not defined" in e for e in page.errors)


def test_injected_script_is_blocked_by_the_page_policy(browser, report_file, tmp_path):
    """Defence in depth: even markup that slipped past escaping could not run a script."""
    injected = tmp_path / "injected.html"
    injected.write_text(report_file.read_text(encoding="utf-8").replace("<body>", f"<body>{EVIL}", 1),
                        encoding="utf-8")
    page = OfflinePage(browser).open(injected)
    page.settle(0.3)
    assert page.dialogs == []
    assert any("Content Security Policy" in e for e in page.errors)


@pytest.mark.slow
def test_full_report_on_stories260k_renders(browser, stories260k, tmp_path):
    """Every implemented claim on the real stories260K: the page has no errors and every figure draws."""
    from mechscope.claims.registry import run_claims

    results = run_claims(stories260k, budget=Budget.named("quick"))
    rep = build_report(stories260k, results, budget=Budget(), started=dt.datetime.now(dt.timezone.utc),
                       seconds=0.0)
    path = tmp_path / "report.html"
    path.write_text(render_html(rep), encoding="utf-8")
    page = OfflinePage(browser).open(path)
    n_divs = page.evaluate("document.querySelectorAll('div.figure').length")
    assert n_divs > 0
    assert page.wait_for(ALL_DRAWN, timeout=120)
    page.settle(0.5)
    assert page.errors == [] and page.dialogs == []
    assert page.evaluate("document.querySelectorAll('.figure-error').length") == 0
