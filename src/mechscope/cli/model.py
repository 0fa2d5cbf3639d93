"""`mechscope info MODEL`: architecture, sizes and hook points of a model."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from mechscope.cli.common import DEVICE_OPT, DTYPE_OPT, JSON_OPT, MODEL_ARG, load_model, write_json


def info(
    model: str = MODEL_ARG,
    json_path: Path = JSON_OPT,
    hooks: bool = typer.Option(False, "--hooks", help="list every hook point, not just those of block 0"),
    device: str = DEVICE_OPT,
    dtype: str = DTYPE_OPT,
) -> None:
    """Print a model's architecture, sizes and hook points."""
    m = load_model(model, device, dtype)
    spec = m.spec
    names = m.hook_names()
    console = Console()
    table = Table(title=f"{spec}", show_header=False)
    for key, value in m.cfg.to_dict().items():
        table.add_row(key, f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value))
    table.add_row("hook points", str(len(names)))
    table.add_row("BOS prepended", str(m.bos_token_id is not None))
    console.print(table)
    shown = names if hooks else [n for n in names if not n.startswith("blocks.") or n.startswith("blocks.0.")]
    console.print("\n".join(shown) + ("" if hooks else "\n(blocks 1.. have the same points; --hooks lists all)"))
    write_json(json_path, {"spec": spec, "config": m.cfg.to_dict(), "hook_names": names})


def register(app: typer.Typer) -> None:
    app.command("info")(info)
