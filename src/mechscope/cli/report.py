"""`mechscope report`: run the claims on a model and write one HTML page (and optionally JSON).

    mechscope report                                  # the shipped default organism
    mechscope report ../shared/models/stories260K --out report.html --json report.json
    mechscope report gpt2 --claims C02,C09 --budget full --seed 1
    mechscope report --list                           # the claims and which are implemented
    mechscope report gpt2 --device cuda --dtype bf16  # the run section shows bf16's effect on the logits
    torchrun --nproc-per-node 8 -m mechscope report meta-llama/Llama-3.2-1B --device cuda   # claims split
    mechscope report gpt2 --workers 2                 # the same on CPU: 2 local processes, a core each

Before the claims run it prints an estimate of the total time (claims/cost.py, calibrated by timing
the model); each claim's line shows its estimate beside the time it took. Under torchrun the claims
are split across ranks by that estimate and rank 0 writes the one report (claims/ranks.py,
docs/distributed.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
import signal
import threading
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from mechscope.claims.base import Budget, ClaimResult
from mechscope.claims.registry import ClaimSpec, discover, parse_ids, select
from mechscope.cli.common import (
    DEVICE_MAP_OPT,
    DEVICE_OPT,
    DTYPE_OPT,
    check_device,
    check_device_map,
    check_dtype,
    default_model_spec,
    load_model,
)
from mechscope.errors import InputError

PRECISION_PROMPTS, PRECISION_SEQ_LEN = 4, 64   # the prompts the half-precision effect is measured on
LONG_RUN_S = 300.0       # an estimate above this on CPU prints the --workers tip
PARTIAL_EVERY_S = 30.0   # while claims run, the page (and JSON) so far is rewritten at most this often

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
    device_map: str = DEVICE_MAP_OPT,
    workers: int = typer.Option(1, "--workers", min=1,
                                help="CPU: run the claims in N local processes (gloo ranks, one model copy and "
                                     "1/N of the cores each, claims taken from one longest-first queue); the "
                                     "report equals a 1-process run at the same threads per process apart from "
                                     "timings. Shorthand for torchrun --standalone --nproc-per-node N."),
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
    for path in (out, json_path):
        _check_writable(path)
    if workers > 1:
        args = [spec, "--out", out, "--budget", budget, "--seed", seed, "--device", device, "--dtype", dtype]
        args += (["--json", json_path] if json_path is not None else []) + (["--claims", claims] if claims else [])
        raise typer.Exit(_run_on_local_ranks(workers, args, device, device_map))
    from mechscope import distributed as ddp

    ddp.init_from_env("nccl" if device.startswith("cuda") else "gloo")
    lead = ddp.rank() == 0
    device = _rank_device(device)
    check_device(device)
    dtype = check_dtype(dtype, device)
    check_device_map(device_map)
    if device_map and ddp.world_size() > 1:
        raise InputError("--device-map with several torchrun ranks would spread every rank's copy over the same "
                         "devices: use either torchrun (one model per rank) or --device-map (one model, many devices)")
    say = console.print if lead else (lambda *a, **k: None)

    from mechscope.claims.cost import estimate
    from mechscope.claims.ranks import run_claims_on_ranks
    from mechscope.report import build_report, write_html, write_json

    precision = _half_precision_effect(spec, device, dtype, device_map, say) if lead and dtype != "float32" else None
    say(f"loading [bold]{_escape_markup(spec)}[/bold] on {device} ({dtype}"
        + (f", device_map {_escape_markup(str(device_map))}" if device_map else "") + ") …")
    hooked = load_model(spec, device, dtype, device_map=device_map)
    n_run = sum(s.implemented for s in chosen)
    est = estimate(hooked, chosen, run_budget) if lead else None
    ranks = ddp.world_size()
    if est is not None:
        say(f"running {n_run} of {len(chosen)} claims (budget {run_budget.name}, seed {seed}"
            + (f", {ranks} ranks" if ranks > 1 else "") + f"): estimated {_duration(_wall(est, ranks))}")
        cores = _cores()
        if ranks == 1 and device == "cpu" and not device_map and cores > 1 and est.total_seconds > LONG_RUN_S:
            say(f"[dim]tip: --workers {cores} runs the claims in {cores} processes of one thread each "
                "(1.3x faster on a 2-core CPU at a 576-wide model; docs/distributed.md)[/dim]")

    started = dt.datetime.now(dt.timezone.utc)
    t0 = time.perf_counter()
    done: list[ClaimResult] = []
    guesses = est.per_claim if est is not None else {}
    prefix = f"rank {ddp.rank()} " if ranks > 1 else ""

    # One line per claim when it finishes. While it runs, on a terminal, a bar fills with its time
    # against its estimate (mechscope.progress.ElapsedBar); the claim's own bars draw below it.
    from mechscope.progress import ElapsedBar

    running: dict[str, ElapsedBar] = {}

    def on_progress(index: int, total: int, claim: ClaimSpec, result: ClaimResult | None) -> None:
        if result is None:
            desc = f"{prefix}[{index}/{total}] {claim.id} {claim.entry.slug}"
            running[claim.id] = ElapsedBar(desc, guesses.get(claim.id) or 1.0)
            return
        bar = running.pop(claim.id, None)
        if bar is not None:
            bar.close()
        done.append(result)
        console.print(prefix + _progress_line(index, total, result, guesses.get(result.id)))

    command = f"mechscope report {spec} --budget {run_budget.name} --seed {seed} --device {device}"
    if dtype != "float32":
        command += f" --dtype {dtype}"
    if device_map:
        command += f" --device-map {device_map}"
    if ids:
        command += f" --claims {','.join(ids)}"

    def write_report(results: list[ClaimResult], seconds: float, status: str | None = None) -> dict:
        rep = build_report(hooked, results, budget=run_budget, started=started, seconds=seconds, spec=spec,
                           claim_ids=ids, command=command)
        rep.run.update(_run_facts(est, ranks, device_map, precision))
        if status is not None:
            rep.run["status"] = status
        write_html(rep, out)
        if json_path is not None:
            write_json(rep, json_path)
        return rep.summary()

    # A run killed from outside (a timeout's SIGTERM, even SIGKILL) still leaves a valid page: every
    # PARTIAL_EVERY_S the claims finished so far are written (atomically), and SIGTERM is handled as ^C.
    last_written = [t0]

    def on_claim_done(index: int, total: int, claim: ClaimSpec, result: ClaimResult | None) -> None:
        on_progress(index, total, claim, result)
        now = time.perf_counter()
        if result is not None and lead and ranks == 1 and index < total and now - last_written[0] >= PARTIAL_EVERY_S:
            write_report(done, now - t0, f"{index} of {total} claims finished, the run still going when this page was written")
            last_written[0] = time.perf_counter()

    interrupted = False
    with _sigterm_as_interrupt():
        try:
            results = run_claims_on_ranks(hooked, ids=[s.id for s in chosen], budget=run_budget,
                                          on_progress=on_claim_done, specs=specs, costs=guesses)
        except KeyboardInterrupt:  # keep what finished: write a partial report, then stop
            for bar in running.values():
                bar.close()
            if ranks > 1:
                raise
            interrupted, results = True, done
            console.print(f"[yellow]interrupted after {len(done)} claims; writing a partial report[/yellow]")
    seconds = time.perf_counter() - t0
    if not lead:
        ddp.shutdown()
        return

    summary = write_report(results, seconds, f"interrupted after {len(done)} of {len(chosen)} claims" if interrupted else None)
    counts = ", ".join(f"{n} {verdict}" for verdict, n in summary.items())
    console.print(f"wrote [bold]{_escape_markup(str(out))}[/bold]"
                  + (f" and [bold]{_escape_markup(str(json_path))}[/bold]" if json_path else "")
                  + f" in {seconds:.1f} s (estimated {_duration(_wall(est, ranks))}): {counts}")
    ddp.shutdown()
    if interrupted:
        raise typer.Exit(130)


def _run_on_local_ranks(workers: int, args: list, device: str, device_map: str | None) -> int:
    """`mechscope report ARGS` under torchrun with `workers` local gloo ranks, the cores shared out among
    them (OMP_NUM_THREADS); returns its exit code. Several single-thread processes beat one process with
    several threads on CPU: most of a claim's ops are too small to split across threads."""
    import subprocess
    import sys

    from mechscope import distributed as ddp

    if ddp.is_distributed() or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise InputError("--workers starts its own ranks: under torchrun, leave it out (torchrun's "
                         "--nproc-per-node already sets how many processes run the claims)")
    if device != "cpu" or device_map:
        raise InputError(f"--workers {workers} is for CPU runs (got --device {device}"
                         + (f", --device-map {device_map}" if device_map else "") + "): on GPUs launch "
                         "torchrun --nproc-per-node N -m mechscope report ... with one rank per device")
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, _cores() // workers))}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={workers}",
               "-m", "mechscope", "report", *map(str, args)]
    return subprocess.run(command, env=env, check=False).returncode


def _cores() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """Within the block, SIGTERM raises KeyboardInterrupt (so a killed run writes what finished); the
    previous handler comes back after. Only the main thread can set handlers: elsewhere, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _rank_device(device: str) -> str:
    """Under torchrun a bare "cuda" means this rank's GPU (cuda:LOCAL_RANK)."""
    from mechscope import distributed as ddp

    if device == "cuda" and ddp.is_distributed():
        import torch

        torch.cuda.set_device(ddp.local_rank())   # nccl collectives (gather_object) use the current device
        return f"cuda:{ddp.local_rank()}"
    return device


def _half_precision_effect(spec: str, device: str, dtype: str, device_map, say) -> dict:
    """Logits of a few prompts in float32, then in `dtype` (model/precision.py); one model in memory at a time."""
    import gc

    from mechscope.data.text import eval_tokens
    from mechscope.model.precision import precision_effect, reference_logits

    say(f"measuring the effect of {dtype} against float32 on {PRECISION_PROMPTS} prompts …")
    ref_model = load_model(spec, device, "float32", device_map=device_map)
    tokens = eval_tokens(ref_model, seq_len=min(PRECISION_SEQ_LEN, ref_model.cfg.n_ctx),
                         n_sequences=PRECISION_PROMPTS, seed=0)
    reference = reference_logits(ref_model, tokens)
    del ref_model
    gc.collect()
    half = load_model(spec, device, dtype, device_map=device_map)
    effect = precision_effect(reference, half, tokens)
    del half
    gc.collect()
    return effect


def _run_facts(est, ranks: int, device_map, precision: dict | None) -> dict:
    """What the run section adds to the metadata: the estimate, the ranks, the device map, precision."""
    facts = {"estimated_seconds": round(_wall(est, ranks), 1) if est is not None else None,
             "ranks": ranks}
    if device_map:
        facts["device_map"] = device_map
    if precision is not None:
        facts["precision"] = precision
    return facts


def _wall(est, ranks: int) -> float:
    """Estimated wall time: the busiest rank's share of the claims (all of them in one process)."""
    from mechscope.claims.ranks import split_claims

    parts = split_claims(list(est.per_claim), est.per_claim, ranks)
    return max(sum(est.per_claim[i] for i in part) for part in parts)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


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


def _progress_line(index: int, total: int, result: ClaimResult, guess: float | None = None) -> str:
    width = len(str(total))
    style = _STYLE.get(result.verdict, "")
    key = ""
    if result.key_metric and result.key_value is not None:
        from mechscope.report.render import key_text, null_text

        key = _escape_markup(f"  {key_text(result)}" + (f"  ({null_text(result)})" if null_text(result) else ""))
    line = (f"[{index:>{width}}/{total}] {result.id} {result.slug:<28} "
            f"[{style}]{result.verdict:<15}[/{style}] {result.seconds + result.null_seconds:6.1f} s"
            + (f" (est. {guess:.1f} s)" if guess else "") + key)
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
