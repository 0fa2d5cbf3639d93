"""`mechscope report`: run the claims on a model and write one HTML page (and optionally JSON).

    mechscope report                                  # the shipped default organism
    mechscope report ../shared/models/stories260K --out report.html --json report.json
    mechscope report gpt2 --claims C02,C09 --budget full --seed 1
    mechscope report --list                           # the claims and which are implemented
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from mechscope.claims.base import Budget, ClaimResult
from mechscope.claims.registry import ClaimSpec, discover, parse_ids, run_claims, select
from mechscope.cli.common import (
    DEVICE_OPT,
    DTYPE_OPT,
    check_device,
    check_dtype,
    default_model_spec,
    load_model,
)
from mechscope.errors import InputError

_STYLE = {"supported": "green", "not supported": "red", "inconclusive": "yellow", "not applicable": "dim",
          "not implemented": "dim", "error": "magenta"}




def report(
    model: str = typer.Argument(None, help="Model spec for mechscope.load: a local HF dir, a hub id, or "
                                           "organism:NAME. Default: the shipped organism."),
    out: Path = typer.Option(Path("report.html"), "--out", "-o", help="Where to write the HTML report."),
    json_path: Path = typer.Option(None, "--json", help="Also write every number as JSON here."),
    claims: str = typer.Option(None, "--claims", help="Comma-separated claim ids, e.g. C01,C09. Default: all."),
    budget: str = typer.Option("quick", "--budget", help="quick (minutes on a laptop) or full."),
    seed: int = typer.Option(0, "--seed", help="Seed for every random choice of every claim."),
    list_only: bool = typer.Option(False, "--list", help="List the claims and whether each is implemented."),
    device: str = DEVICE_OPT,
    dtype: str = DTYPE_OPT,
) -> None:
    """Run the claims catalogue on MODEL and write a self-contained HTML report."""
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    specs = discover()
    ids = parse_ids(claims)
    chosen = select(specs, ids)  # fails early on an unknown id, before loading a model
    if list_only:
        _print_catalogue(chosen, json_path)
        return
    run_budget = dataclasses.replace(Budget.named(budget), seed=seed)
    spec = model or default_model_spec()
    check_device(device)
    check_dtype(dtype)
    for path in (out, json_path):
        _check_writable(path)

    from mechscope.report import build_report, write_html, write_json

    console.print(f"loading [bold]{_escape_markup(spec)}[/bold] on {device} ({dtype}) …")
    hooked = load_model(spec, device, dtype)
    n_run = sum(s.implemented for s in chosen)
    console.print(f"running {n_run} of {len(chosen)} claims (budget {run_budget.name}, seed {seed})")

    started = dt.datetime.now(dt.timezone.utc)
    t0 = time.perf_counter()
    done: list[ClaimResult] = []

    # One line per claim. On a terminal it names the claim while it runs and is rewritten in place
    # with the verdict (a claim's own tqdm bar may draw over it meanwhile); elsewhere (CI logs) only
    # the finished line is written. No rich Live display: it would fight with those tqdm bars.
    def on_progress(index: int, total: int, claim: ClaimSpec, result: ClaimResult | None) -> None:
        if result is None:
            if console.is_terminal:
                console.print(f"[{index}/{total}] {claim.id} {_escape_markup(claim.entry.slug)} …", end="")
            return
        done.append(result)
        if console.is_terminal:
            console.file.write("\r\x1b[2K")  # back to the line start, erase it
        console.print(_progress_line(index, total, result))

    interrupted = False
    try:
        run_claims(hooked, ids=ids, budget=run_budget, on_progress=on_progress, specs=specs)
    except KeyboardInterrupt:  # keep what finished: write a partial report, then stop
        interrupted = True
        console.print(f"[yellow]interrupted after {len(done)} claims; writing a partial report[/yellow]")
    results = done
    seconds = time.perf_counter() - t0

    command = f"mechscope report {spec} --budget {run_budget.name} --seed {seed} --device {device}"
    if dtype != "float32":
        command += f" --dtype {dtype}"
    if ids:
        command += f" --claims {','.join(ids)}"
    rep = build_report(hooked, results, budget=run_budget, started=started, seconds=seconds, spec=spec,
                       claim_ids=ids, command=command)
    if interrupted:
        rep.run["interrupted"] = True
    write_html(rep, out)
    if json_path is not None:
        write_json(rep, json_path)
    counts = ", ".join(f"{n} {verdict}" for verdict, n in rep.summary().items())
    console.print(f"wrote [bold]{_escape_markup(str(out))}[/bold]"
                  + (f" and [bold]{_escape_markup(str(json_path))}[/bold]" if json_path else "")
                  + f" in {seconds:.1f} s: {counts}")
    if interrupted:
        raise typer.Exit(130)


def _check_writable(path: Path | None) -> None:
    """Fail before the claims run, not after, when an output cannot be written."""
    if path is None:
        return
    parent = path.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"cannot create the folder for {path}: {err}; choose another --out/--json path") from err
    if path.is_dir() or not os.access(parent, os.W_OK):
        raise InputError(f"cannot write {path}: choose another --out/--json path")


def _progress_line(index: int, total: int, result: ClaimResult) -> str:
    width = len(str(total))
    style = _STYLE.get(result.verdict, "")
    key = ""
    if result.key_metric and result.key_value is not None:
        from mechscope.report.render import key_text, null_text

        key = _escape_markup(f"  {key_text(result)}" + (f"  ({null_text(result)})" if null_text(result) else ""))
    line = (f"[{index:>{width}}/{total}] {result.id} {result.slug:<28} "
            f"[{style}]{result.verdict:<15}[/{style}] {result.seconds:6.1f} s{key}")
    if result.error:
        line += f"\n         [magenta]{_escape_markup(result.error)}[/magenta]"
    return line


def _escape_markup(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _print_catalogue(specs: list[ClaimSpec], json_path: Path | None) -> None:
    console = Console(highlight=False)
    table = Table("id", "slug", "implemented", "claim")
    for s in specs:
        table.add_row(s.id, s.entry.slug, "yes" if s.implemented else "no", s.entry.title)
    console.print(table)
    if json_path is not None:
        from mechscope.io import write_json_atomic

        write_json_atomic(json_path, {"claims": [
            {**dataclasses.asdict(s.entry), "implemented": s.implemented} for s in specs]})


def register(app: typer.Typer) -> None:
    app.command("report")(report)
