"""`mechscope info MODEL`: architecture, sizes and hook points of a model."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from mechscope.io import write_json_atomic


def default_model_spec() -> str:
    from mechscope.organisms import DEFAULT_ORGANISM

    return f"organism:{DEFAULT_ORGANISM}"


def info(
    model: str = typer.Argument(None, help="HF model directory, hub id or organism:NAME (default: the shipped organism)"),
    json_path: Path = typer.Option(None, "--json", help="also write the information as JSON here"),
    hooks: bool = typer.Option(False, "--hooks", help="list every hook point, not just those of block 0"),
    device: str = typer.Option("cpu", help="device to load on"),
) -> None:
    """Print a model's architecture, sizes and hook points."""
    import mechscope

    spec = model or default_model_spec()
    m = mechscope.load(spec, device=device)
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
    if json_path:
        write_json_atomic(json_path, {"spec": spec, "config": m.cfg.to_dict(), "hook_names": names})


def register(app: typer.Typer) -> None:
    app.command("info")(info)
