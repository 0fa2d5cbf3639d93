"""`mechscope patch grid|attribute|path MODEL`: activation, attribution and path patching on a task."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from mechscope.cli.common import (
    DEVICE_OPT,
    DTYPE_OPT,
    HTML_OPT,
    JSON_OPT,
    MODEL_ARG,
    check_device,
    emit,
    load_model,
)

patch_app = typer.Typer(help="Activation patching, attribution patching and path patching on a built-in task.",
                        no_args_is_help=True)

TASK_HELP = "induction, ioi, docstring, facts or days"


FSDP_OPT = typer.Option(False, "--fsdp", help="under torchrun: shard the model's parameters across the ranks (FSDP2), "
                        "each rank running its share of the prompts")


def _setup(model: str | None, task: str, n_prompts: int, seed: int, device: str, dtype: str, fsdp: bool = False):
    from mechscope.tasks import get_task

    m = _load_sharded(model, device, dtype) if fsdp else load_model(model, device, dtype)
    return m, get_task(m, task, n_prompts=n_prompts, seed=seed)


def _load_sharded(model: str | None, device: str, dtype: str):
    """--fsdp: join torchrun's process group, load the whole model on CPU and shard it across the ranks
    (onto cuda:LOCAL_RANK with --device cuda)."""
    from mechscope import distributed as ddp
    from mechscope.errors import InputError
    from mechscope.model.sharding import shard_across_ranks

    check_device(device)            # before any rank joins or loads: --device cuda on a machine without one
    kind = device.split(":")[0]
    if not ddp.init_from_env("nccl" if kind == "cuda" else "gloo"):
        raise InputError("--fsdp shards the model across torchrun ranks: launch with `torchrun --nproc-per-node N "
                         "-m mechscope ... --fsdp` (one rank per device)")
    return shard_across_ranks(load_model(model, "cpu", dtype), device=kind)


def _print_top(result, label: str, k: int = 8) -> None:
    console = Console()
    console.print(f"{label}: clean metric {result.clean_metric:.3f}, corrupt {result.corrupt_metric:.3f}")
    for idx, value in result.top(k):
        console.print(f"  {'.'.join(str(i) for i in idx):>10}  {value:+.3f}")


@patch_app.command("grid")
def grid(
    model: str = MODEL_ARG,
    task: str = typer.Option("ioi", help=TASK_HELP),
    site: str = typer.Option("resid_pre", help="resid_pre, resid_mid, resid_post, attn_out, mlp_out, z, q, k, v, pattern"),
    direction: str = typer.Option("denoise", help="denoise (clean into corrupt) or noise (corrupt into clean)"),
    per_position: bool = typer.Option(False, help="head sites: one entry per (layer, head, position)"),
    n_prompts: int = typer.Option(16),
    seed: int = typer.Option(0),
    json_path: Path = JSON_OPT,
    html_path: Path = HTML_OPT,
    device: str = DEVICE_OPT,
    dtype: str = DTYPE_OPT,
) -> None:
    """Patch every (layer, position) or (layer, head) site; print the largest effects."""
    from mechscope.patching import PatchingConfig, activation_patching

    m, t = _setup(model, task, n_prompts, seed, device, dtype)
    result = activation_patching(m, t, site, PatchingConfig(direction=direction, per_position=per_position))
    _print_top(result, f"{task} {direction} patching of {site} (fraction of effect; index = layer.pos or layer.head)")
    emit(result, json_path, html_path, title=f"Activation patching of {site} on {task}: {m.spec}")


@patch_app.command("attribute")
def attribute(
    model: str = MODEL_ARG,
    task: str = typer.Option("ioi", help=TASK_HELP),
    sites: str = typer.Option("resid_pre,attn_out,mlp_out,z", help="comma-separated sites"),
    compare: bool = typer.Option(False, help="also run exact patching and report the agreement"),
    n_prompts: int = typer.Option(16),
    seed: int = typer.Option(0),
    json_path: Path = JSON_OPT,
    html_path: Path = HTML_OPT,
    device: str = DEVICE_OPT,
    dtype: str = DTYPE_OPT,
    fsdp: bool = FSDP_OPT,
) -> None:
    """Attribution patching: a first-order estimate of every site from one forward + one backward."""
    from mechscope import distributed as ddp
    from mechscope.errors import InputError
    from mechscope.patching import attribution_patching, compare_with_exact

    if fsdp and compare:
        raise InputError("--compare runs exact patching, which is not built for a sharded model; drop --fsdp or --compare")
    m, t = _setup(model, task, n_prompts, seed, device, dtype, fsdp)
    names = tuple(s.strip() for s in sites.split(",") if s.strip())
    result = compare_with_exact(m, t, names) if compare else attribution_patching(m, t, names)
    if ddp.rank() != 0:             # every rank holds the result; rank 0 prints and writes it
        ddp.shutdown()
        return
    console = Console()
    console.print(f"{task}: clean {result.clean_metric:.3f}, corrupt {result.corrupt_metric:.3f}")
    import torch

    for name, values in result.values.items():
        flat = values.reshape(-1)
        best = flat.abs().argsort(descending=True)[:5]
        where = [".".join(str(int(i)) for i in torch.unravel_index(b, values.shape)) for b in best]
        console.print(f"  {name} (index = layer.pos or layer.head): "
                      + ", ".join(f"{w} {float(flat[b]):+.3f}" for w, b in zip(where, best, strict=True)))
        if name in result.agreement:
            a = result.agreement[name]
            console.print(f"    vs exact: pearson {a.pearson:.3f}, spearman {a.spearman:.3f}, "
                          f"sign agreement {a.sign_agreement:.2f}, top-{a.k} overlap {a.top_k_overlap:.2f}")
    emit(result, json_path, html_path, title=f"Attribution patching on {task}: {m.spec}")
    ddp.shutdown()


@patch_app.command("path")
def path(
    model: str = MODEL_ARG,
    task: str = typer.Option("ioi", help=TASK_HELP),
    receivers: str = typer.Option("logits", help="'logits' or comma-separated layer.head.q|k|v, e.g. 3.0.q,3.5.q"),
    direction: str = typer.Option("noise"),
    n_prompts: int = typer.Option(16),
    seed: int = typer.Option(0),
    json_path: Path = JSON_OPT,
    html_path: Path = HTML_OPT,
    device: str = DEVICE_OPT,
    dtype: str = DTYPE_OPT,
) -> None:
    """Path patching from every head (sender) to the receivers, other paths frozen."""
    from mechscope.errors import InputError
    from mechscope.patching import PathPatchingConfig, path_patching

    m, t = _setup(model, task, n_prompts, seed, device, dtype)
    if receivers == "logits":
        parsed = "logits"
    else:
        try:
            parsed = [(int(a), int(b), c) for a, b, c in (r.strip().split(".") for r in receivers.split(","))]
        except ValueError:
            raise InputError(f"receivers must be 'logits' or like '3.0.q,3.5.k'; got {receivers!r}") from None
    result = path_patching(m, t, parsed, config=PathPatchingConfig(direction=direction))
    _print_top(result, f"{task} path patching -> {receivers} (index = layer.head)")
    emit(result, json_path, html_path, title=f"Path patching to {receivers} on {task}: {m.spec}")


def register(app: typer.Typer) -> None:
    app.add_typer(patch_app, name="patch")
