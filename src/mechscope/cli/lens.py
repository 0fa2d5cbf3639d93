"""`mechscope lens ...`: logit lens, tuned lens (train / compare), LayerNorm removal."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from mechscope.cli.common import (
    DEVICE_OPT,
    DTYPE_OPT,
    HTML_OPT,
    JSON_OPT,
    MODEL_ARG,
    MODEL_OPT,
    NSEQ_OPT,
    SEED_OPT,
    SEQ_OPT,
    TEXT_OPT,
    emit,
    load_model,
    per_layer_table,
    text_batches,
    write_json,
)

lens_app = typer.Typer(help="Read the residual stream as predictions: logit lens, tuned lens, norm removal.",
                       no_args_is_help=True)


@lens_app.command("logit")
def logit_cmd(model: str = MODEL_ARG, json_path: Path = JSON_OPT, html_path: Path = HTML_OPT,
              text: list[Path] = TEXT_OPT, seq_len: int = SEQ_OPT, n_sequences: int = NSEQ_OPT,
              seed: int = SEED_OPT, top_k: int = typer.Option(5, help="tokens kept per layer and position"),
              device: str = DEVICE_OPT, dtype: str = DTYPE_OPT) -> None:
    """Logit lens: per-layer cross-entropy, KL to the final distribution, top tokens."""
    from mechscope.lens.logit_lens import LogitLensConfig, logit_lens

    m = load_model(model, device, dtype)
    r = logit_lens(m, text_batches(m, seq_len, n_sequences, seed, text), LogitLensConfig(top_k=top_k))
    Console().print(per_layer_table(f"logit lens ({r.n_tokens} predictions, model CE {r.final_ce:.4f})",
                                    r.layer_labels, {"CE": r.ce, "KL to final": r.kl_to_final,
                                                     "top-1 agreement": r.top1_agreement}))
    emit(r, json_path, html_path, title=f"Logit lens: {m.spec}")


@lens_app.command("tuned-train")
def tuned_train_cmd(model: str = MODEL_ARG,
                    out: Path = typer.Option(..., "--out", help="directory for the lens and its checkpoints"),
                    steps: int = typer.Option(200, help="training steps"),
                    lr: float = typer.Option(1e-3, help="Adam learning rate"),
                    text: list[Path] = TEXT_OPT, seq_len: int = SEQ_OPT,
                    n_sequences: int = typer.Option(64, "--n-sequences", help="training sequences"),
                    seed: int = typer.Option(1, help="seed for training windows and token sampling"),
                    json_path: Path = JSON_OPT, device: str = DEVICE_OPT, dtype: str = DTYPE_OPT) -> None:
    """Train a tuned lens; resumes from the checkpoint in --out if there is one."""
    from mechscope.lens.tuned_training import TunedLensTrainConfig, train_tuned_lens

    m = load_model(model, device, dtype)
    batches = text_batches(m, seq_len, n_sequences, seed, text, "train")
    _, training = train_tuned_lens(m, batches, TunedLensTrainConfig(steps=steps, lr=lr, seed=seed), checkpoint_dir=out)
    last = training.losses[-1] if training.losses else float("nan")
    Console().print(f"tuned lens in {out}: steps {training.resumed_from}→{training.steps}, final mean KL {last:.4f}")
    write_json(json_path, training)


@lens_app.command("tuned-compare")
def tuned_compare_cmd(lens_dir: Path = typer.Argument(..., help="directory written by tuned-train"),
                      model: str = MODEL_OPT,
                      json_path: Path = JSON_OPT, html_path: Path = HTML_OPT, text: list[Path] = TEXT_OPT,
                      seq_len: int = SEQ_OPT, n_sequences: int = NSEQ_OPT, seed: int = SEED_OPT,
                      device: str = DEVICE_OPT, dtype: str = DTYPE_OPT) -> None:
    """Logit lens vs a trained tuned lens on held-out text."""
    from mechscope.lens.tuned_lens import TunedLens
    from mechscope.lens.tuned_training import compare_lenses

    m = load_model(model, device, dtype)
    lens = TunedLens.load(lens_dir, m)
    cmp, _, _ = compare_lenses(m, lens, text_batches(m, seq_len, n_sequences, seed, text, "held_out"))
    Console().print(per_layer_table("KL to final (nats)", cmp.layer_labels,
                                    {"logit lens": cmp.logit_kl, "tuned lens": cmp.tuned_kl}))
    Console().print(f"tuned lens at or below logit lens at every layer: {cmp.tuned_wins_everywhere}")
    emit(cmp, json_path, html_path, title=f"Logit lens vs tuned lens: {m.spec}")


@lens_app.command("remove-norms")
def remove_norms_cmd(model: str = MODEL_ARG,
                     out: Path = typer.Option(None, "--out", help="save the norm-free model here (HF dir + frozen_norms.json)"),
                     steps: int = typer.Option(200, help="fine-tune steps of each run (norm-free and control)"),
                     lr: float = typer.Option(3e-4, help="AdamW learning rate"),
                     text: list[Path] = TEXT_OPT, seq_len: int = SEQ_OPT,
                     n_sequences: int = typer.Option(64, "--n-sequences", help="training sequences"),
                     seed: int = SEED_OPT, json_path: Path = JSON_OPT, html_path: Path = HTML_OPT,
                     device: str = DEVICE_OPT, dtype: str = DTYPE_OPT) -> None:
    """Fine-tune every LayerNorm/RMSNorm away (one at a time) and compare with a plain fine-tune."""
    from mechscope.lens.norm_removal import NormRemovalConfig, remove_norms

    m = load_model(model, device, dtype)
    train = text_batches(m, seq_len, n_sequences, seed + 1, text, "train")
    held_out = text_batches(m, seq_len, 16, seed, text, "held_out")
    r = remove_norms(m, train, held_out, NormRemovalConfig(steps=steps, lr=lr, seed=seed), out_dir=out)
    table = Table(title=f"held-out CE after {r.steps} steps")
    table.add_column("model")
    table.add_column("CE (nats)", justify="right")
    for name, value in (("original", r.ce_original), ("norms frozen, no fine-tune", r.ce_frozen_untrained),
                        ("plain fine-tune (control)", r.ce_control), ("norm-free fine-tune", r.ce_norm_free)):
        table.add_row(name, f"{value:.4f}")
    Console().print(table)
    if r.checkpoint:
        Console().print(f"norm-free model saved in {r.checkpoint} (load with mechscope.lens.load_norm_free)")
    emit(r, json_path, html_path, title=f"LayerNorm removal: {m.spec}")


def register(app: typer.Typer) -> None:
    app.add_typer(lens_app, name="lens")
