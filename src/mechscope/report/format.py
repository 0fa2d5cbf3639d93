"""How numbers and metrics read on the page (the JSON keeps every value in full)."""

from __future__ import annotations

import math
from typing import Any

from mechscope.io import to_jsonable

MAX_LIST_SHOWN = 12  # longer lists show their first items and a count; the JSON has them all

VERDICT_COLOURS = {
    "supported": "#1a7f37",
    "not supported": "#cf222e",
    "inconclusive": "#9a6700",
    "not applicable": "#6e7781",
    "not implemented": "#8c959f",
    "error": "#8250df",
}


def format_value(value: Any) -> str:
    """0.123456 -> '0.1235', 12345678.0 -> '1.235e+07', True -> 'yes', None -> '—', lists shortened."""
    value = to_jsonable(value)
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if value == 0:
            return "0"
        return f"{value:.4g}"
    if isinstance(value, list):
        shown = ", ".join(format_value(v) for v in value[:MAX_LIST_SHOWN])
        more = f", … ({len(value)} values)" if len(value) > MAX_LIST_SHOWN else ""
        return f"[{shown}{more}]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {format_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def flatten_metrics(metrics: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Nested metrics as (dotted name, formatted value) rows for the metrics table."""
    rows: list[tuple[str, str]] = []
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        value = to_jsonable(value)
        if isinstance(value, dict) and value and len(value) <= 24:
            rows.extend(flatten_metrics(value, prefix=f"{name}."))
        else:
            rows.append((name, format_value(value)))
    return rows


def finite_json(obj: Any) -> Any:
    """JSON-able `obj` with NaN and ±inf as null, so strict JSON readers (browsers, jq) accept it.

    Values JSON has no type for (sets, enums, custom objects) become their str().
    """
    obj = to_jsonable(obj)
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [finite_json(v) for v in obj]
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)  # anything else a claim put in its metrics: readable, and the file still writes
