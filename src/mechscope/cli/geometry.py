"""`mechscope geometry ...`: norm growth, dilution, positional helix, token embeddings, layer robustness."""

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
    NSEQ_OPT,
    SEED_OPT,
    SEQ_OPT,
    TEXT_OPT,
    emit,
    load_model,
    per_layer_table,
    text_batches,
)

geometry_app = typer.Typer(help="Geometry of the residual stream and embeddings; layer robustness.",
                           no_args_is_help=True)


@geometry_app.command("norms")
def norms_cmd(model: str = MODEL_ARG, json_path: Path = JSON_OPT, html_path: Path = HTML_OPT,
              text: list[Path] = TEXT_OPT, seq_len: int = SEQ_OPT, n_sequences: int = NSEQ_OPT,
              seed: int = SEED_OPT, device: str = DEVICE_OPT, dtype: str = DTYPE_OPT) -> None:
    """Residual norm per layer (position 0 apart), exponential growth fit, OV weight norms."""
    from mechscope.geometry.norms import residual_norms

    m = load_model(model, device, dtype)
    r = residual_norms(m, text_batches(m, seq_len, n_sequences, seed, text))
    console = Console()
    console.print(per_layer_table("residual norm", r.layer_labels,
                                  {"mean (pos ≥ 1)": r.mean_norm, "position 0": r.first_position_norm,
                                   "OV norm": [float("nan")] + r.ov_norm}))
    console.print(f"growth ×{r.growth_factor:.4f} per block, R² {r.fit_r2:.3f}")
    emit(r, json_path, html_path, title=f"Residual norms: {m.spec}")


@geometry_app.command("dilution")
def dilution_cmd(model: str = MODEL_ARG, json_path: Path = JSON_OPT, html_path: Path = HTML_OPT,
                 source_point: int = typer.Option(0, help="0 = the embedding, k+1 = the output of block k"),
                 text: list[Path] = TEXT_OPT, seq_len: int = SEQ_OPT, n_sequences: int = NSEQ_OPT,
                 seed: int = SEED_OPT, device: str = DEVICE_OPT, dtype: str = DTYPE_OPT) -> None:
    """How much of the stream a direction written early still is, layer by layer."""
    from mechscope.geometry.dilution import norm_dilution

    m = load_model(model, device, dtype)
    r = norm_dilution(m, text_batches(m, seq_len, n_sequences, seed, text), source_point=source_point)
    Console().print(per_layer_table(f"dilution of the direction written at {r.source}", r.layer_labels,
                                    {"share": r.share, "retained": r.retained, "nominal share": r.nominal_share,
                                     "norm ratio": r.norm_ratio}))
    emit(r, json_path, html_path, title=f"Norm dilution: {m.spec}")


@geometry_app.command("positional")
def positional_cmd(model: str = MODEL_ARG, json_path: Path = JSON_OPT, html_path: Path = HTML_OPT,
                   max_positions: int = typer.Option(None, help="use rows 0..N-1 of W_pos only"),
                   device: str = DEVICE_OPT, dtype: str = DTYPE_OPT) -> None:
    """PCA of learned positional embeddings: variance, lateness (Spearman), helix fit, first-token outlier."""
    from mechscope.geometry.positional import PositionalConfig, positional_geometry

    m = load_model(model, device, dtype)
    r = positional_geometry(m, PositionalConfig(max_positions=max_positions))
    console = Console()
    console.print(f"top 3 PCs explain {100 * r.top3_explained:.1f}% "
                  f"({', '.join(f'{100 * v:.1f}%' for v in r.explained[:5])} ...)")
    console.print(f"Spearman(PC1, position) = {r.pc1_spearman:.3f}")
    console.print(f"PC2/PC3 sinusoid fit: R² {r.helix_r2[0]:.3f} / {r.helix_r2[1]:.3f}, period "
                  f"{r.helix_period:.1f}, phase gap {r.helix_phase_gap:.2f} rad")
    console.print(f"first-token outlier score {r.first_token_outlier:.2f}")
    emit(r, json_path, html_path, title=f"Positional embeddings: {m.spec}")


@geometry_app.command("token-embeddings")
def token_embeddings_cmd(model: str = MODEL_ARG, json_path: Path = JSON_OPT, html_path: Path = HTML_OPT,
                         query: list[str] = typer.Option(None, "--query", help="token text whose neighbours to list"),
                         seed: int = SEED_OPT, device: str = DEVICE_OPT, dtype: str = DTYPE_OPT) -> None:
    """Nearest neighbours in W_E and linear probes of token properties against a shuffled control."""
    from mechscope.geometry.token_embeddings import TokenEmbeddingConfig, token_embedding_geometry

    m = load_model(model, device, dtype)
    cfg = TokenEmbeddingConfig(seed=seed, **({"queries": tuple(query)} if query else {}))
    r = token_embedding_geometry(m, cfg)
    table = Table(title=f"probes on {r.n_tokens} token embeddings")
    for col in ("property", "positives", "accuracy", "control"):
        table.add_column(col)
    for p in r.properties:
        table.add_row(p.name, str(p.n_positive), "—" if p.accuracy is None else f"{p.accuracy:.3f}",
                      p.skipped or f"{p.control_accuracy:.3f}")
    console = Console()
    console.print(table)
    for q, ns in r.neighbours.items():
        console.print(f"{q!r}: " + ", ".join(repr(t) for t in ns), markup=False)
    emit(r, json_path, html_path, title=f"Token embeddings: {m.spec}")


@geometry_app.command("layer-robustness")
def layer_robustness_cmd(model: str = MODEL_ARG, json_path: Path = JSON_OPT, html_path: Path = HTML_OPT,
                         text: list[Path] = TEXT_OPT, seq_len: int = SEQ_OPT, n_sequences: int = NSEQ_OPT,
                         seed: int = SEED_OPT, device: str = DEVICE_OPT, dtype: str = DTYPE_OPT) -> None:
    """Delete each block / swap adjacent blocks: top-1 agreement with the original and loss."""
    from mechscope.geometry.layer_robustness import layer_robustness

    m = load_model(model, device, dtype)
    r = layer_robustness(m, text_batches(m, seq_len, n_sequences, seed, text))
    table = Table(title=f"layer robustness (original CE {r.base_ce:.4f})")
    for col in ("edit", "top-1 agreement", "CE"):
        table.add_column(col)
    for i, (a, c) in enumerate(zip(r.deleted_agreement, r.deleted_ce, strict=True)):
        table.add_row(f"delete {i}", f"{a:.3f}", f"{c:.4f}")
    for i, (a, c) in enumerate(zip(r.swapped_agreement, r.swapped_ce, strict=True)):
        table.add_row(f"swap {i}↔{i + 1}", f"{a:.3f}", f"{c:.4f}")
    Console().print(table)
    emit(r, json_path, html_path, title=f"Layer robustness: {m.spec}")


def register(app: typer.Typer) -> None:
    app.add_typer(geometry_app, name="geometry")
