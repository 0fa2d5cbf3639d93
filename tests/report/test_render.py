"""The HTML page and the JSON file: self-contained, escaped, and holding every number."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
import math
import re
from html.parser import HTMLParser
from types import SimpleNamespace

import plotly.graph_objects as go
import pytest
import torch

from mechscope.claims.base import Budget, ClaimResult
from mechscope.report import build_report, render_html, write_html, write_json
from mechscope.report.escape import safe_token, safe_tokens
from mechscope.report.format import flatten_metrics, format_value
from mechscope.report.metadata import model_card
from tests.report.conftest import EVIL


@dataclasses.dataclass
class FakeCfg:
    arch: str = "gpt2"
    n_layers: int = 2
    d_model: int = 3


def fake_model(name: str = "fake-model"):
    hf = torch.nn.Linear(3, 4)
    hf.config = SimpleNamespace(name_or_path=name)
    return SimpleNamespace(cfg=FakeCfg(), hf_model=hf, tokenizer=["a", "b", EVIL], spec=f"random:{name}",
                           hook_names=lambda: [f"hook_{i}" for i in range(5)], dtype=torch.float32,
                           device=torch.device("cpu"))


def fake_results() -> list[ClaimResult]:
    fig = go.Figure(go.Bar(x=safe_tokens(["a", EVIL]), y=[1, 2]), layout=dict(title=safe_token(EVIL)))
    return [
        ClaimResult("C01", "residual-accumulation", "Accumulates", "supported",
                    metrics={"kl": [0.5, 0.25, float("nan")], "gap": {"mean": 0.1234567, "worst": float("inf")},
                             "token": EVIL},
                    key_metric="gap", evidence=f"The token {EVIL} was predicted.", method=f"method {EVIL}",
                    rule=f"rule {EVIL}", reference="Belrose 2023", figures=[fig, fig]),
        ClaimResult("C02", "norm-growth", f"title {EVIL}", "error", error=f"ValueError: {EVIL}"),
        ClaimResult("C05", "token-embeddings", "Embeddings", "not implemented"),
    ]


def make_report(results=None, name="fake-model"):
    budget = Budget(seed=4)
    started = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    return build_report(fake_model(name), results if results is not None else fake_results(), budget=budget,
                        started=started, seconds=12.5, claim_ids=None, command="mechscope report x")


class Scripts(HTMLParser):
    """Every <script> (attributes and text), every src/href attribute, the CSP meta."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.scripts, self.links, self.csp = [], [], None
        self._in_script = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("src", "href", "data", "action"):
            if key in attrs:
                self.links.append((tag, attrs[key]))
        if tag == "meta" and attrs.get("http-equiv", "").lower() == "content-security-policy":
            self.csp = attrs["content"]
        if tag == "script":
            self._in_script = {"attrs": attrs, "text": ""}

    def handle_data(self, data):
        if self._in_script is not None:
            self._in_script["text"] += data

    def handle_endtag(self, tag):
        if tag == "script" and self._in_script is not None:
            self.scripts.append(self._in_script)
            self._in_script = None


def parse(page: str) -> Scripts:
    parser = Scripts()
    parser.feed(page)
    return parser


def test_model_card_reads_the_model():
    card = model_card(fake_model())
    assert card["n_params"] == 3 * 4 + 4
    assert card["n_hooks"] == 5 and card["vocab_size"] == 3 and card["tokenizer"] == "list"
    assert card["arch"] == "gpt2" and card["n_layers"] == 2 and card["spec"] == "random:fake-model"
    assert card["dtype"] == "float32" and card["device"] == "cpu"


def test_json_has_every_claim_and_number(tmp_path):
    path = write_json(make_report(), tmp_path / "r.json")

    def no_nan(value):
        raise AssertionError(f"non-standard JSON constant {value}")

    data = json.loads(path.read_text(), parse_constant=no_nan)  # strict: NaN/Infinity would fail
    assert set(data) >= {"model", "run", "claims"}
    assert data["model"]["n_params"] == 16
    assert data["run"]["seed"] == 4 and data["run"]["budget"]["name"] == "quick"
    assert data["run"]["started_utc"] == "2026-01-02T03:04:05+00:00" and data["run"]["seconds"] == 12.5
    assert set(data["run"]["versions"]) >= {"mechscope", "torch", "transformers"}
    assert [c["id"] for c in data["claims"]] == ["C01", "C02", "C05"]
    c01 = data["claims"][0]
    assert {"id", "slug", "verdict", "metrics"} <= set(c01)
    assert c01["slug"] == "residual-accumulation" and c01["verdict"] == "supported"
    assert c01["metrics"]["kl"] == [0.5, 0.25, None]
    assert c01["metrics"]["gap"] == {"mean": 0.1234567, "worst": None}
    assert c01["key_value"] == {"mean": 0.1234567, "worst": None} and c01["n_figures"] == 2
    assert data["claims"][1]["error"] == f"ValueError: {EVIL}"
    assert data["summary"] == {"supported": 1, "not implemented": 1, "error": 1}


def test_html_is_self_contained_with_plotly_once(tmp_path):
    page = write_html(make_report(), tmp_path / "r.html").read_text(encoding="utf-8")
    parsed = parse(page)
    assert parsed.links == [(tag, href) for tag, href in parsed.links if href.startswith("#")]  # anchors only
    outside_scripts = re.sub(r"<script[^>]*>.*?</script>", "", page, flags=re.S)
    assert not re.search(r"<(link|iframe|object|embed|img|base)\b|@import|url\(", outside_scripts, flags=re.I)
    assert page.count("* plotly.js v") == 1  # the bundle's header comment: included exactly once
    kinds = [s["attrs"].get("type") for s in parsed.scripts]
    assert kinds == ["application/json", None, None]  # figure data, plotly.js, the loader
    figures = json.loads(parsed.scripts[0]["text"])
    assert sorted(figures) == ["fig-c01-0", "fig-c01-1"]
    for div_id in figures:
        assert f'id="{div_id}"' in page
    # the CSP allows exactly the page's two executable scripts, by hash
    hashes = set(re.findall(r"'sha256-([^']+)'", parsed.csp))
    expected = {base64.b64encode(hashlib.sha256(s["text"].encode()).digest()).decode()
                for s in parsed.scripts[1:]}
    assert hashes == expected
    assert "default-src 'none'" in parsed.csp and "unsafe-inline" not in parsed.csp.split("script-src")[1].split(";")[0]


def test_every_model_string_is_escaped():
    page = render_html(make_report(name=EVIL))
    # the only <script elements are the page's own three
    assert len(re.findall(r"<script", page, flags=re.I)) == 3
    assert "alert(1)</script>" not in page
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    # model name (title, h1, card), claim title x2, evidence, method, rule, metric, error
    assert page.count(escaped) >= 10
    # the figure text was escaped once by safe_token and survives as data, not markup
    figures = json.loads(parse(page).scripts[0]["text"])
    assert figures["fig-c01-0"]["data"][0]["x"] == ["a", escaped]
    assert figures["fig-c01-0"]["layout"]["title"]["text"] == escaped


def test_a_raw_token_cannot_close_the_figure_data_block():
    fig = go.Figure(go.Bar(x=["</script><script>alert(2)</script>"], y=[1]))
    result = ClaimResult("C09", "induction-heads", "t", "supported", figures=[fig])
    page = render_html(make_report([result]))
    parsed = parse(page)
    assert len(parsed.scripts) == 3
    assert json.loads(parsed.scripts[0]["text"])["fig-c09-0"]["data"][0]["x"] == ["</script><script>alert(2)</script>"]


def test_a_bad_figure_is_reported_and_the_page_still_renders():
    good = go.Figure(go.Scatter(y=[1, 2]))
    result = ClaimResult("C09", "induction-heads", "t", "supported", figures=["not a figure", good])
    page = render_html(make_report([result]))
    assert "figure 1: TypeError" in page
    assert 'id="fig-c09-1"' in page


def test_page_without_figures_carries_no_plotly():
    page = render_html(make_report([ClaimResult("C05", "token-embeddings", "t", "not implemented")]))
    assert "plotly.js v" not in page and "script-src 'none'" in parse(page).csp


def test_safe_token():
    assert safe_token("<b>&\"'") == "&lt;b&gt;&amp;&quot;&#x27;"
    assert safe_token(" the\n", show_whitespace=True) == "·the\\n"
    assert safe_tokens([1, "<"]) == ["1", "&lt;"]


@pytest.mark.parametrize("value, text", [
    (0.123456, "0.1235"), (12345678.0, "1.235e+07"), (3, "3"), (123456, "123,456"), (True, "yes"),
    (None, "—"), (float("nan"), "nan"), (torch.tensor(0.5), "0.5"), (0.0, "0"),
    (list(range(20)), "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, … (20 values)]"),
])
def test_format_value(value, text):
    assert format_value(value) == text


def test_json_survives_odd_metric_values(tmp_path):
    import numpy as np

    class Odd:
        def __str__(self):
            return "odd"

    result = ClaimResult("C02", "norm-growth", "t", "supported",
                         metrics={"odd": Odd(), "arr": np.array([1.0, np.inf]), "t": torch.tensor([2, 3]),
                                  "np": np.float32(0.5), 3: "int key"})
    data = json.loads(write_json(make_report([result]), tmp_path / "r.json").read_text())
    assert data["claims"][0]["metrics"] == {"odd": "odd", "arr": [1.0, None], "t": [2, 3], "np": 0.5, "3": "int key"}


def test_flatten_metrics():
    rows = dict(flatten_metrics({"a": {"b": 1, "c": {"d": 2.5}}, "e": [1, 2]}))
    assert rows == {"a.b": "1", "a.c.d": "2.5", "e": "[1, 2]"}
    assert math.isnan(float(format_value(float("nan"))))


def test_null_value_interval_and_model_independent_experiments_are_shown_apart(tmp_path):
    twin = ClaimResult("C02", "norm-growth", "Grows", "inconclusive", metrics={"g": 1.05, "g_ci95": [1.01, 1.09]},
                       key_metric="g", null="twin", null_value=1.0444, null_metrics={"g": 1.0444})
    toy = ClaimResult("C08", "superposition", "Toy superposition", "supported", metrics={"d": 0.3},
                      key_metric="d", null="none")
    report = make_report([twin, toy])
    assert report.summary() == {"inconclusive": 1}  # the toy experiment is outside the model's tally
    page = render_html(report)
    assert "g = 1.05 [1.01, 1.09]" in page and "twin: 1.044" in page
    summary_table = page.split('<table class="summary">')[1].split("</table>")[0]
    independent = page.split('<table class="summary independent">')[1].split("</table>")[0]
    assert "C02" in summary_table and "C08" not in summary_table and "C08" in independent
    assert "Null twin metrics" in page
    data = json.loads(write_json(report, tmp_path / "r.json").read_text())
    assert data["summary"] == {"inconclusive": 1} and data["model_independent_summary"] == {"supported": 1}
    c02, c08 = data["claims"]
    assert c02["null_value"] == 1.0444 and c02["key_ci95"] == [1.01, 1.09] and c02["null"] == "twin"
    assert c08["model_independent"] and not c02["model_independent"]
