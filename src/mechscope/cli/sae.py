"""`mechscope sae harvest|train|eval|dashboard`: sparse autoencoders from the command line.

    mechscope sae train organism:tiny-gpt2 --hook blocks.2.hook_resid_post --arch topk --out saes/
    mechscope sae eval saes/topk@blocks.2.hook_resid_post --model organism:tiny-gpt2 --json eval.json
    mechscope sae dashboard saes/topk@blocks.2.hook_resid_post --model organism:tiny-gpt2 --out dash.html

`train` runs data-parallel when launched with `torchrun --nproc-per-node N "$(which mechscope)" sae train ...`
(see docs/sae-training.md).
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from mechscope.cli.common import (
    DEVICE_OPT,
    DTYPE_OPT,
    MODEL_ARG,
    MODEL_OPT,
    TEXT_OPT,
    load_model,
    text_tokens,
    write_json,
)

sae_app = typer.Typer(help="Sparse autoencoders: harvest activations, train, evaluate, dashboards.",
                      no_args_is_help=True)


def _tokens(model, seq_len: int, n_sequences: int, seed: int, text: list[Path] | None, split: str = "all"):
    """Text windows for an SAE: harvest and train read the text's training part, evaluate its held-out part."""
    if seq_len > model.cfg.n_ctx:
        Console(stderr=True).print(f"note: --seq-len {seq_len} is longer than the model's context; "
                                   f"using {model.cfg.n_ctx}")
        seq_len = model.cfg.n_ctx
    return text_tokens(model, seq_len, n_sequences, seed, text, split)


@sae_app.command("harvest")
def harvest(
    model: str = MODEL_ARG,
    hook: list[str] = typer.Option(..., "--hook", help="hook point(s) to store (repeat the option)"),
    out: Path = typer.Option(..., "--out", help="directory for the shards and manifest (resumes if partial)"),
    seq_len: int = typer.Option(128, help="tokens per sequence"),
    n_sequences: int = typer.Option(1024, help="sequences of text to run"),
    text: list[Path] = TEXT_OPT,
    seed: int = typer.Option(0),
    device: str = DEVICE_OPT, dtype: str = DTYPE_OPT,
    json_path: Path = typer.Option(None, "--json", help="write the store's manifest here too"),
) -> None:
    """Store activations of hook points over a text to disk (sharded safetensors + manifest)."""
    from mechscope.data.activation_store import harvest_activations

    m = load_model(model, device, dtype)
    store = harvest_activations(m, _tokens(m, seq_len, n_sequences, seed, text, "train"), hook, out)
    Console().print(f"{store.n_tokens:,} tokens × {len(hook)} hooks in {len(store.manifest['shards'])} shards at {out}")
    write_json(json_path, store.manifest)


@sae_app.command("train")
def train(
    model: str = MODEL_ARG,
    hook: list[str] = typer.Option(..., "--hook", help="hook point(s); one SAE per hook and architecture"),
    arch: list[str] = typer.Option(["topk"], "--arch", help="relu_l1 | topk | batch_topk | jumprelu (repeatable)"),
    out: Path = typer.Option(..., "--out", help="directory: one SAELens folder per SAE, plus the checkpoint"),
    kind: str = typer.Option("sae", "--kind", help="sae | transcoder (each --hook an MLP input, e.g. "
                             "blocks.1.ln2.hook_normalized) | crosscoder (one over all --hook sources) | clt (one cross-layer "
                             "transcoder; the --hook options are the MLP inputs of consecutive layers, in order; topk)"),
    skip: bool = typer.Option(False, "--skip", help="transcoders: add a skip connection"),
    expansion: int = typer.Option(8, help="d_sae = expansion × d_in"),
    k: int = typer.Option(32, help="active latents per token (topk, batch_topk)"),
    l1: float = typer.Option(2.0, help="L1 coefficient (relu_l1)"),
    l0: float = typer.Option(1.0, help="L0 coefficient (jumprelu)"),
    steps: int = typer.Option(2000), batch: int = typer.Option(4096, help="tokens per step (global)"),
    lr: float = typer.Option(None, help="default: 2e-4 / sqrt(d_sae / 16384)"),
    seq_len: int = typer.Option(128), n_sequences: int = typer.Option(1024),
    text: list[Path] = TEXT_OPT,
    store: Path = typer.Option(None, "--store", help="harvest to this directory first and train from disk"),
    checkpoint_every: int = typer.Option(500), seed: int = typer.Option(0),
    device: str = DEVICE_OPT, dtype: str = DTYPE_OPT,
    json_path: Path = typer.Option(None, "--json", help="write the training curves here"),
) -> None:
    """Train SAEs (every hook × architecture at once, from one activation stream); resumes from --out."""
    from mechscope import distributed as ddp
    from mechscope.dictionary.pipeline import SAEPipelineConfig, train_on_model
    from mechscope.dictionary.trainer import TrainerConfig
    from mechscope.dictionary.transcoder_format import save_dictionary

    ddp.init_from_env()
    try:
        m = load_model(model, device, dtype)
        tokens = _tokens(m, seq_len, n_sequences, seed, text, "train")
        rank = ddp.rank()
        cfg = SAEPipelineConfig(hooks=tuple(hook), architectures=tuple(arch), expansion_factor=expansion, k=k,
                                l1_coefficient=l1, l0_coefficient=l0, batch_size=batch,
                                store=str(store) if store else None, seed=seed, kind=kind, skip_connection=skip)
        trainer = TrainerConfig(steps=steps, lr=lr, checkpoint_dir=str(out), checkpoint_every=checkpoint_every)
        saes, history = train_on_model(m, tokens, cfg, trainer, rank=rank, world_size=ddp.world_size())
        if rank == 0:
            table = Table(title=f"SAEs trained on {m.spec}")
            for col in ("SAE", "L0", "FVU", "dead", "saved to"):
                table.add_column(col)
            for name, sae in saes.items():
                path = save_dictionary(sae, out / name)
                last = history.last(name)
                table.add_row(name, f"{last.get('l0', float('nan')):.1f}", f"{last.get('fvu', float('nan')):.3f}",
                              f"{last.get('dead_fraction', float('nan')):.1%}", str(path))
            Console().print(table)
            write_json(json_path, history)
    finally:
        ddp.shutdown()


@sae_app.command("eval")
def evaluate(
    sae_dir: Path = typer.Argument(..., help="a SAELens folder (cfg.json + sae_weights.safetensors)"),
    model: str = MODEL_OPT,
    hook: str = typer.Option(None, help="hook to splice into (default: the SAE's own hook_name)"),
    seq_len: int = typer.Option(128), n_sequences: int = typer.Option(64),
    text: list[Path] = TEXT_OPT, seed: int = typer.Option(1), device: str = DEVICE_OPT, dtype: str = DTYPE_OPT,
    json_path: Path = typer.Option(None, "--json", help="write the metrics here"),
) -> None:
    """L0, explained variance, MSE, CE loss recovered, KL and dead latents of an SAE spliced into the model."""
    from mechscope.dictionary.evaluate import evaluate_sae
    from mechscope.dictionary.saelens_format import load_saelens

    sae = load_saelens(sae_dir)
    m = load_model(model, device, dtype)
    result = evaluate_sae(sae, m, _tokens(m, seq_len, n_sequences, seed, text, "held_out"), hook_name=hook)
    table = Table(title=f"{sae_dir} on {result.n_tokens:,} tokens", show_header=False)
    for key, value in result.to_dict().items():
        if isinstance(value, float):
            table.add_row(key, f"{value:.4g}")
    Console().print(table)
    write_json(json_path, result)


@sae_app.command("dashboard")
def dashboard(
    sae_dir: Path = typer.Argument(..., help="a SAELens folder"),
    model: str = MODEL_OPT,
    out: Path = typer.Option(Path("sae_dashboard.html"), "--out", help="the HTML file to write"),
    latents: str = typer.Option(None, help="comma-separated latent ids (default: a seeded sample of live ones)"),
    n_latents: int = typer.Option(12), seq_len: int = typer.Option(64), n_sequences: int = typer.Option(128),
    text: list[Path] = TEXT_OPT, seed: int = typer.Option(0), device: str = DEVICE_OPT, dtype: str = DTYPE_OPT,
    json_path: Path = typer.Option(None, "--json", help="write the dashboard data here"),
) -> None:
    """A static HTML page per SAE: top-activating contexts, activation histograms, logit effects."""
    from mechscope.dictionary.dashboard import feature_dashboard
    from mechscope.dictionary.saelens_format import load_saelens
    from mechscope.errors import InputError

    sae = load_saelens(sae_dir)
    m = load_model(model, device, dtype)
    try:
        ids = [int(x) for x in latents.split(",")] if latents else None
    except ValueError as err:
        raise InputError(f"--latents must be comma-separated integers, got {latents!r}") from err
    dash = feature_dashboard(sae, m, _tokens(m, seq_len, n_sequences, seed, text), ids, n_latents=n_latents, seed=seed)
    dash.save_html(out, title=f"SAE {sae_dir.name}")
    Console().print(f"dashboard of {len(dash.cards)} latents written to {out}")
    write_json(json_path, dash)


def register(app: typer.Typer) -> None:
    app.add_typer(sae_app, name="sae")
