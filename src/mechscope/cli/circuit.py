"""`mechscope circuit discover|evaluate|curve MODEL`: circuit discovery on a built-in task.

discover   score every edge (EAP, EAP-IG, exact patching) or run ACDC; print the top edges;
           --graph writes the circuit in EAP-IG's JSON layout
evaluate   the metric and normalised faithfulness of a given circuit (an EAP-IG graph file, an
           organism's circuit.json, or --edges a0.h1->a1,...)
curve      faithfulness against circuit size; CPR, CMD and the edges needed for 50 / 80 / 90%

--html writes one self-contained page (plotly inlined): the interactive circuit graph and the curve.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from mechscope.cli.common import DEVICE_OPT, DTYPE_OPT, HTML_OPT, JSON_OPT, MODEL_ARG, write_html, write_json
from mechscope.cli.patching import FSDP_OPT, TASK_HELP, _setup

circuit_app = typer.Typer(help="Circuit discovery: EAP, EAP-IG, exact edge patching, ACDC, faithfulness curves.",
                          no_args_is_help=True)

METHOD_HELP = "eap, eap-ig, eap-ig-activations, exact, exact-denoising or acdc"
ABLATION_HELP = "patching, mean, mean_positional or zero"
QKV_OPT = typer.Option(False, "--qkv", help="attention destinations per head and q/k/v input (edges like "
                                            "a0.h1->a1.h2<k>), as EAP-IG's graphs; default one per layer")


def _circuit_setup(model, task, n_prompts, seed, device, dtype, ablation, fsdp: bool = False, qkv: bool = False):
    from mechscope.circuits import CircuitSetup

    m, t = _setup(model, task, n_prompts, seed, device, dtype, fsdp)
    return CircuitSetup.from_task(m, t, ablation=ablation, qkv=qkv)


def _scores(setup, method: str, steps: int, tau: float, objective: str):
    """(EdgeScores, circuit mask or None)."""
    from mechscope.circuits import acdc, attribute

    if method == "acdc":
        found = acdc(setup, tau, objective=objective)
        return found.scores, found.mask
    return attribute(setup, method, steps=steps), None


@circuit_app.command("discover")
def discover(
    model: str = MODEL_ARG,
    task: str = typer.Option("ioi", help=TASK_HELP),
    method: str = typer.Option("eap-ig", help=METHOD_HELP),
    ablation: str = typer.Option("patching", help=ABLATION_HELP),
    steps: int = typer.Option(5, help="EAP-IG interpolation steps"),
    tau: float = typer.Option(0.01, help="ACDC threshold (> 0)"),
    objective: str = typer.Option("kl", help="ACDC objective: kl or metric"),
    top: int = typer.Option(20, help="edges to print / keep in --graph (ACDC: its own circuit)"),
    n_prompts: int = typer.Option(32),
    seed: int = typer.Option(0),
    json_path: Path = JSON_OPT,
    html_path: Path = HTML_OPT,
    graph_path: Path = typer.Option(None, "--graph", help="write the circuit as an EAP-IG graph file"),
    device: str = DEVICE_OPT,
    dtype: str = DTYPE_OPT,
    fsdp: bool = FSDP_OPT,
    qkv: bool = QKV_OPT,
) -> None:
    """Score every edge of the model's graph on a task and print the largest."""
    from mechscope import distributed as ddp
    from mechscope.circuits import to_eapig, top_n
    from mechscope.errors import InputError

    if fsdp and method not in ("eap", "eap-ig", "eap-ig-activations"):
        raise InputError(f"--fsdp runs the gradient methods (eap, eap-ig, eap-ig-activations), not {method!r}: "
                         "exact scores and ACDC batch their forwards by each rank's prompt count")
    setup = _circuit_setup(model, task, n_prompts, seed, device, dtype, ablation, fsdp, qkv)
    scores, mask = _scores(setup, method, steps, tau, objective)
    if ddp.rank() != 0:             # every rank holds the scores; rank 0 prints and writes them
        ddp.shutdown()
        return
    mask = mask if mask is not None else top_n(setup.graph, scores.scores, top)
    console = Console()
    console.print(f"{task}: {scores.method} ({ablation}), {setup.graph.n_edges} edges, clean metric "
                  f"{scores.clean_metric:.3f}; circuit of {int(mask.sum())} edges")
    for name, value in scores.top(top):
        console.print(f"  {name:>18}  {value:+.4f}")
    write_json(json_path, {**scores.to_dict(), "circuit": setup.graph.edges_of(mask)})
    write_json(graph_path, to_eapig(setup.graph, scores.scores, mask, d_model=setup.model.cfg.d_model))
    if html_path:
        from mechscope.circuits.figures import graph_figure

        title = f"{task}: {scores.method} circuit ({int(mask.sum())} edges)"
        write_html(html_path, title, [graph_figure(setup.graph, scores.scores, mask=mask, title=title)])
    ddp.shutdown()


def _load_mask(setup, circuit: Path | None, edges: str | None):
    from mechscope.circuits import from_eapig
    from mechscope.errors import InputError

    g = setup.graph
    if edges:
        return g.mask_from_edges([e.strip() for e in edges.split(",") if e.strip()])
    if circuit is None:
        raise InputError("give the circuit: --circuit FILE (EAP-IG graph or circuit.json) or --edges a0.h1->a1,...")
    data = json.loads(Path(circuit).read_text())
    if data.get("format", "").startswith("mechscope-circuit"):
        return g.mask_from_edges(list(data["edges"]))
    graph, _, mask = from_eapig(data, qkv=g.qkv, n_kv_heads=g.kv_heads)
    if graph != g:
        raise InputError(f"{circuit} describes a {graph.n_layers}-layer, {graph.n_heads}-head graph "
                         f"({graph.n_kv_heads or graph.n_heads} kv heads); this model's is {g.n_layers} x {g.n_heads} "
                         f"({g.kv_heads} kv heads)")
    return mask


@circuit_app.command("evaluate")
def evaluate_cmd(
    model: str = MODEL_ARG,
    circuit: Path = typer.Option(None, "--circuit", help="EAP-IG graph file or an organism's circuit.json"),
    edges: str = typer.Option(None, help="comma-separated edges, e.g. 'input->a0,a0.h1->logits'"),
    task: str = typer.Option("ioi", help=TASK_HELP),
    ablation: str = typer.Option("patching", help=ABLATION_HELP),
    n_prompts: int = typer.Option(32),
    seed: int = typer.Option(0),
    json_path: Path = JSON_OPT,
    device: str = DEVICE_OPT,
    dtype: str = DTYPE_OPT,
    qkv: bool = QKV_OPT,
) -> None:
    """The metric of a circuit (every other edge ablated) and its normalised faithfulness."""
    import torch

    from mechscope.circuits.engine import mean_metric

    setup = _circuit_setup(model, task, n_prompts, seed, device, dtype, ablation, qkv=qkv)
    g = setup.graph
    mask = _load_mask(setup, circuit, edges)
    circuit_m, full, empty = mean_metric(setup, torch.stack([mask, g.full(), g.empty()])).tolist()
    gap = full - empty
    faith = (circuit_m - empty) / gap if gap != 0 else float("nan")
    out = {"task": task, "ablation": ablation, "n_edges": int(mask.sum()), "n_total_edges": g.n_edges,
           "circuit_metric": circuit_m, "full_metric": full, "empty_metric": empty, "faithfulness": faith,
           "edges": g.edges_of(mask)}
    Console().print(f"{task} ({ablation}): circuit of {out['n_edges']}/{g.n_edges} edges: metric {circuit_m:.3f} "
                    f"(full {full:.3f}, empty {empty:.3f}), faithfulness {faith:.3f}")
    write_json(json_path, out)


@circuit_app.command("curve")
def curve(
    model: str = MODEL_ARG,
    task: str = typer.Option("ioi", help=TASK_HELP),
    method: str = typer.Option("eap-ig", help=METHOD_HELP),
    ablation: str = typer.Option("patching", help=ABLATION_HELP),
    selection: str = typer.Option("top-n", help="top-n or greedy"),
    steps: int = typer.Option(5),
    tau: float = typer.Option(0.01),
    objective: str = typer.Option("kl"),
    n_prompts: int = typer.Option(32),
    seed: int = typer.Option(0),
    json_path: Path = JSON_OPT,
    html_path: Path = HTML_OPT,
    device: str = DEVICE_OPT,
    dtype: str = DTYPE_OPT,
    qkv: bool = QKV_OPT,
) -> None:
    """Faithfulness of the top edges at a grid of sizes; CPR, CMD, edges for 50/80/90%."""
    from mechscope.circuits import faithfulness_curve

    setup = _circuit_setup(model, task, n_prompts, seed, device, dtype, ablation, qkv=qkv)
    scores, _ = _scores(setup, method, steps, tau, objective)
    result = faithfulness_curve(setup, scores, selection=selection)
    needed = ", ".join(f"{float(k):.0%}: {v:.1%}" for k, v in result.fraction_for.items())
    Console().print(f"{task}: {scores.method} ({ablation}, {selection}) CPR {result.cpr:.3f}, CMD {result.cmd:.3f}; "
                    f"edges needed for {needed} of {result.n_total_edges}")
    write_json(json_path, {"curve": result.to_dict(), "scores": scores.to_dict()})
    write_html(html_path, f"{task}: faithfulness of {scores.method} circuits ({ablation})",
               [result.figure(), scores.figure()])


def register(app: typer.Typer) -> None:
    app.add_typer(circuit_app, name="circuit")
