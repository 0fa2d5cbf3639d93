"""The claims report: one self-contained HTML page and one JSON file per model.

    from mechscope.report import build_report, write_html, write_json
    from mechscope.report.escape import safe_token   # for token strings in claim figures
"""

from mechscope.report.render import Report, build_report, render_html, write_html, write_json

__all__ = ["Report", "build_report", "render_html", "write_html", "write_json"]
