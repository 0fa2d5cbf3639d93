"""Every command's --html opens offline in a real browser: `heads` and `patch grid` (which loaded plotly from a
CDN before cli/common.py) draw their figures with no network, no page error."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from mechscope.cli import app
from tests.helpers import OfflinePage

pytestmark = pytest.mark.browser
ALL_DRAWN = ("document.querySelectorAll('div.figure').length > 0 && Array.from("
             "document.querySelectorAll('div.figure')).every(d => d.querySelector('.main-svg'))")


@pytest.mark.parametrize("args", [
    ["heads", "--n-sequences", "2", "--half-len", "8", "--detector", "induction"],
    ["patch", "grid", "--task", "induction", "--site", "resid_pre", "--n-prompts", "2"],
], ids=["heads", "patch-grid"])
def test_command_html_renders_offline(browser, tmp_path, args):
    out = tmp_path / "page.html"
    result = CliRunner().invoke(app, [*args, "--html", str(out)])
    assert result.exit_code == 0, (result.output, result.exception)
    page = OfflinePage(browser).open(out)
    assert page.wait_for(ALL_DRAWN, timeout=60), page.errors
    page.settle(0.3)
    assert page.errors == [] and page.dialogs == []
    assert page.evaluate("document.querySelectorAll('.figure .main-svg').length") >= 1
