"""`mechscope organism ...`: train, evaluate, list and export model organisms.

    mechscope organism list
    mechscope organism train tiny-gpt2 --out runs/tiny --text ../shared/corpora/*.txt.gz
    mechscope organism export runs/tiny          # write runs/tiny/final from the latest checkpoint
    mechscope organism eval tiny-gpt2            # a shipped name or an organism directory (default: tiny-llama)
    mechscope organism build compiled-induction --out DIR   # rebuild a compiled organism (seconds)

The shipped organisms are made with `train` and then `cp -r RUN/final src/mechscope/organisms/weights/NAME`.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from mechscope.io import write_json_atomic
from mechscope.organisms.shipped import DEFAULT_ORGANISM

organism_app = typer.Typer(help="Model organisms: small models with planted mechanisms.", no_args_is_help=True)


def _console() -> Console:
    return Console(stderr=True, highlight=False)


@organism_app.command("list")
def list_cmd(json_path: Path = typer.Option(None, "--json", help="Write the list as JSON here.")) -> None:
    """List the shipped organisms (what each plants, measured, and for which claims), the presets that
    can be trained and the organisms that can be built."""
    from mechscope.organisms import list_shipped
    from mechscope.organisms.compiled import COMPILED
    from mechscope.organisms.presets import PRESETS
    from mechscope.organisms.shipped import planted_summary

    shipped = list_shipped()
    planted = {name: planted_summary(name) for name in shipped}
    table = Table("organism", "kind", "mechanisms (measured on the shipped weights)", "claims", title="shipped")
    for name, info in planted.items():
        shown = f"{name}\n(default)" if name == DEFAULT_ORGANISM else name
        table.add_row(shown, info["kind"], info["mechanisms"], " ".join(info["claims"]))
    Console().print(table)
    table = Table("name", "how", "shipped", "description", title="can be made")
    for name, p in PRESETS.items():
        table.add_row(name, "organism train", "yes" if name in shipped else "", p.description)
    for name in COMPILED:
        table.add_row(name, "organism build", "yes" if name in shipped else "", "weights written by construction")
    Console().print(table)
    if json_path:
        write_json_atomic(json_path, {"presets": {n: p.to_dict() for n, p in PRESETS.items()},
                                      "compiled": list(COMPILED), "shipped": shipped, "default": DEFAULT_ORGANISM,
                                      "planted": planted})


@organism_app.command("train")
def train_cmd(
    preset: str = typer.Argument(..., help="Preset name (see `mechscope organism list`)."),
    out: Path = typer.Option(..., "--out", help="Run directory: data, checkpoints, log and final/ go here."),
    text: list[Path] = typer.Option(None, "--text", help="Natural-text files (.txt or .txt.gz) or folders of "
                                                        "them; repeatable."),
    threads: int = typer.Option(None, "--threads", help="torch CPU threads (default: torch's choice)."),
    steps: int = typer.Option(None, "--steps", help="Override the preset's number of steps."),
    json_path: Path = typer.Option(None, "--json", help="Write the training card here too."),
) -> None:
    """Train PRESET into OUT (resumes from OUT/checkpoint.pt if present); writes OUT/final."""
    from mechscope.organisms.card import read_card
    from mechscope.organisms.presets import get_preset
    from mechscope.organisms.train import train

    p = get_preset(preset, **({"steps": steps} if steps else {}))
    console = _console()
    console.print(f"training {p.name} ({p.description}) -> {out}")
    final = train(p, out, text or [], threads=threads, show_progress=True,
                  on_eval=lambda step, m: console.print(f"step {step}: " + ", ".join(
                      f"{k}={v:.3g}" for k, v in m.items())))
    card = read_card(final)
    console.print(f"done: {final}  ({card['tokens_per_second']:.0f} tokens/s, "
                  f"{card['fraction_of_peak']:.0%} of measured fp32 matmul peak)")
    if json_path:
        write_json_atomic(json_path, card)


@organism_app.command("export")
def export_cmd(
    run_dir: Path = typer.Argument(..., help="A run directory written by `mechscope organism train`."),
    json_path: Path = typer.Option(None, "--json", help="Write the training card here too."),
) -> None:
    """Write RUN_DIR/final from the run's latest checkpoint (e.g. after an interrupted run)."""
    from mechscope.organisms.card import read_card
    from mechscope.organisms.train import export_checkpoint

    final = export_checkpoint(run_dir)
    _console().print(f"wrote {final}")
    if json_path:
        write_json_atomic(json_path, read_card(final))


@organism_app.command("eval")
def eval_cmd(
    organism: str = typer.Argument(DEFAULT_ORGANISM, help="A shipped organism name or an organism directory."),
    prompts: int = typer.Option(200, "--prompts", help="Prompts per planted task."),
    json_path: Path = typer.Option(None, "--json", help="Write the metrics as JSON here."),
) -> None:
    """Measure each planted mechanism on an organism (held-out names and prompts)."""
    from mechscope.organisms.evaluate import evaluate
    from mechscope.organisms.loading import load_organism

    model, tokenizer, gt = load_organism(organism)
    metrics = evaluate(model, tokenizer, gt, None, n_prompts=prompts)
    table = Table("metric", "value")
    for k, v in metrics.items():
        table.add_row(k, f"{v:.3f}")
    Console().print(table)
    if json_path:
        write_json_atomic(json_path, metrics)


@organism_app.command("build")
def build_cmd(
    name: str = typer.Argument(..., help="A compiled organism (see `mechscope organism list`)."),
    out: Path = typer.Option(..., "--out", help="Directory to write the checkpoint and circuit.json into."),
    seed: int = typer.Option(0, "--seed", help="Seed of the construction (the shipped copy uses 0)."),
    json_path: Path = typer.Option(None, "--json", help="Write the measured metrics as JSON here."),
) -> None:
    """Write a compiled organism (weights by construction + circuit.json with measured metrics)."""
    from mechscope.organisms.compiled import build, load_circuit

    metrics = load_circuit(build(name, out, seed=seed)).metrics
    _console().print(f"wrote {out}: " + ", ".join(f"{k}={v:.3g}" for k, v in metrics.items()))
    if json_path:
        write_json_atomic(json_path, metrics)


def register(app: typer.Typer) -> None:
    app.add_typer(organism_app, name="organism")
