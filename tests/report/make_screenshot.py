"""Regenerate the README screenshot from a real report (not a test).

    mechscope report --out report.html
    python -m tests.report.make_screenshot report.html docs/report-screenshot.png

Captures the page from the top down to the end of the first figure, once every figure has drawn.
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

from tests.helpers import CHROMIUM_ARGS, OfflinePage, find_chromium

ALL_DRAWN = "Array.from(document.querySelectorAll('div.figure')).every(d => d.querySelector('.main-svg'))"
FIRST_FIGURE_BOTTOM = ("(() => { const f = document.querySelector('div.figure');"
                       " return f ? f.getBoundingClientRect().bottom + window.scrollY + 20 : 2000; })()")


def main(report: str, out: str, width: int = 1280) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=find_chromium(), args=CHROMIUM_ARGS)
        page = OfflinePage(browser).open(Path(report))
        page.page.set_viewport_size({"width": width, "height": 900})
        if not page.wait_for(ALL_DRAWN, timeout=120):
            raise SystemExit("figures did not render")
        page.settle(1.0)
        if page.errors:
            raise SystemExit(f"page has errors: {page.errors}")
        height = int(page.evaluate(FIRST_FIGURE_BOTTOM))
        page.page.screenshot(path=out, full_page=True, clip={"x": 0, "y": 0, "width": width, "height": height})
        browser.close()
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
