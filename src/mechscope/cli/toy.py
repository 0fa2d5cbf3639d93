"""`mechscope tms ...`: toy models of superposition, trained and drawn into a self-contained HTML page."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from mechscope.cli.common import write_html, write_json
from mechscope.io import to_jsonable


def register(app: typer.Typer) -> None:
    tms = typer.Typer(help="Toy models of superposition (Elhage et al. 2022).", no_args_is_help=True)
    tms.command("sweep")(sweep)
    tms.command("phase")(phase)
    tms.command("abs")(absolute_value)
    app.add_typer(tms, name="tms")


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def sweep(
    features: int = typer.Option(5, help="n, number of features"),
    hidden: int = typer.Option(2, help="m, hidden dimensions"),
    sparsities: int = typer.Option(10, help="instances in the sweep p = base^-linspace(0, 1, k)"),
    base: float = typer.Option(20.0, help="sparsest p is 1/base"),
    replicas: int = typer.Option(1, help="seeds per sparsity; the lowest-loss one is kept"),
    importance_decay: float = typer.Option(0.9, help="importance of feature i is decay**i (1 = equal)"),
    activation: str = typer.Option("relu", help="relu or linear"),
    correlated_pairs: int = typer.Option(0, help="pairs of features present together"),
    anticorrelated_pairs: int = typer.Option(0, help="pairs of features never present together"),
    steps: int = typer.Option(10_000),
    batch: int = typer.Option(1024),
    lr: float = typer.Option(1e-3),
    lr_schedule: str = typer.Option("constant", help="constant (paper) or cosine"),
    seed: int = typer.Option(0),
    threads: int = typer.Option(1, help="torch threads (1 is fastest on a shared machine; 0 = torch default)"),
    out: Path = typer.Option(Path("tms.html"), help="HTML page with the figures"),
    json_path: Path | None = typer.Option(None, "--json", help="write the numbers as JSON here"),
) -> None:
    """Train a sparsity sweep and draw dimensionality (and 2-D geometry when hidden = 2)."""
    from mechscope.toy import ToyConfig, sweep_probabilities
    from mechscope.toy.sweep import superposition_sweep

    _set_threads(threads)
    cfg = ToyConfig(n_features=features, n_hidden=hidden, importance_decay=importance_decay, activation=activation,
                    n_correlated_pairs=correlated_pairs, n_anticorrelated_pairs=anticorrelated_pairs, steps=steps,
                    batch_size=batch, lr=lr, lr_schedule=lr_schedule, seed=seed, threads=threads)
    run = superposition_sweep(cfg, sweep_probabilities(sparsities, base), replicas, show_progress=True)
    result = run.sweep
    payload = {"config": run.config, "seconds": run.trained.seconds, "sweep": result}
    if run.geometry is not None:
        payload["geometry"] = run.geometry
    write_html(out, f"Toy models of superposition: {features} features in {hidden} dimensions", run.figures(),
               [f"Trained {run.config.n_instances} instances in {run.trained.seconds:.1f} s "
                f"({steps} steps, batch {batch}, lr {lr:g} {lr_schedule}).",
                "dims/feature per sparsity: " + ", ".join(
                    f"1/p={x:.3g}: {d:.3f}" for x, d in zip(result.inverse_density.tolist(),
                                                            result.dims_per_feature.tolist(), strict=True))])
    _finish(out, json_path, payload)


def phase(
    grid: int = typer.Option(8, help="cells per axis"),
    activation: str = typer.Option("relu", help="relu or linear"),
    replicas: int = typer.Option(2),
    steps: int = typer.Option(4000),
    seed: int = typer.Option(0),
    threads: int = typer.Option(1, help="torch threads (1 is fastest on a shared machine; 0 = torch default)"),
    out: Path = typer.Option(Path("tms-phase.html")),
    json_path: Path | None = typer.Option(None, "--json", help="write the numbers as JSON here"),
) -> None:
    """The sparsity x importance phase diagram for 2 features in 1 dimension."""
    import torch

    from mechscope.toy import PhaseConfig, phase_diagram

    _set_threads(threads)
    cfg = PhaseConfig(feature_density=tuple((10 ** -torch.linspace(0, 2, grid)).tolist()),
                      relative_importance=tuple((10 ** torch.linspace(-1, 1, grid)).tolist()),
                      activation=activation, replicas=replicas, steps=steps, seed=seed)
    result = phase_diagram(cfg, show_progress=True)
    counts = {name: result.count(name) for name in result.PHASES}
    write_html(out, "Phase diagram: one extra feature against one dimension", [result.figure()],
               [f"cells per phase: {counts}"])
    _finish(out, json_path, {"config": cfg, "diagram": result, "counts": counts})


def absolute_value(
    features: int = typer.Option(8),
    neurons: int = typer.Option(4),
    sparsities: int = typer.Option(6),
    steps: int = typer.Option(3000),
    seed: int = typer.Option(0),
    threads: int = typer.Option(1, help="torch threads (1 is fastest on a shared machine; 0 = torch default)"),
    out: Path = typer.Option(Path("tms-abs.html")),
    json_path: Path | None = typer.Option(None, "--json", help="write the numbers as JSON here"),
) -> None:
    """Superposition with computation: |x| through a hidden ReLU layer, across sparsities."""
    from mechscope.toy import AbsConfig, train_abs

    _set_threads(threads)
    cfg = AbsConfig(n_features=features, n_neurons=neurons, n_instances=sparsities, steps=steps, seed=seed)
    result = train_abs(cfg, show_progress=True)
    write_html(out, f"Computing |x| for {features} features with {neurons} neurons", [result.figure()],
               [f"features computed per sparsity: {result.features_computed}",
                "capacity (features' worth computed) per sparsity: "
                + ", ".join(f"{c:.2f}" for c in result.capacity)])
    _finish(out, json_path, {"config": cfg, "result": result})


def _finish(out: Path, json_path: Path | None, payload: dict) -> None:
    write_json(json_path, payload)
    typer.echo(f"wrote {out}" + (f" and {json_path}" if json_path else ""))
    if "counts" in payload:
        typer.echo(json.dumps(to_jsonable(payload["counts"])))
