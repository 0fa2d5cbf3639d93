"""The `mechscope` command line: a thin typer layer over the library.

Each concept contributes one module here exposing `register(app)`; this file only assembles them
and turns our own exceptions into one clear line instead of a traceback.
"""

from __future__ import annotations

import importlib
import sys

import typer

from mechscope.cli.common import silence_padding_warning
from mechscope.errors import MechscopeError

app = typer.Typer(
    name="mechscope",
    help="Mechanistic interpretability for Hugging Face causal LMs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
silence_padding_warning()


@app.callback()
def _root() -> None:
    """Mechanistic interpretability for Hugging Face causal LMs."""


_COMMAND_MODULES: tuple[str, ...] = ("model", "report", "organism", "lens", "geometry", "heads", "patching", "toy", "sae",
                                     "graph", "circuit", "memory")

for _name in _COMMAND_MODULES:
    importlib.import_module(f"mechscope.cli.{_name}").register(app)


def main() -> None:
    try:
        app()
    except MechscopeError as err:
        typer.secho(f"error: {err}", err=True, fg=typer.colors.RED)
        sys.exit(2)
