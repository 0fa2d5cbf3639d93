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


# -- linear concepts, steering, circles (issue #18) -------------------------------------------------------------

PAIRS_OPT = typer.Option(None, "--pairs", help="word-pair file(s), one 'base<TAB>target' per line; the file name "
                         "(without extension) names the concept; default: the built-in concepts")


def _concepts(m, pairs: list[Path] | None):
    from mechscope.geometry.word_pairs import concept_pairs, default_concepts, read_pairs

    if not pairs:
        return default_concepts(m, min_concepts=1)
    return {p.stem: concept_pairs(m, p.stem, read_pairs(p)) for p in pairs}


@geometry_app.command("concept")
def concept_cmd(model: str = MODEL_ARG, json_path: Path = JSON_OPT, html_path: Path = HTML_OPT,
                pairs: list[Path] = PAIRS_OPT,
                space: str = typer.Option("unembedding", help="'unembedding' (Park's γ) or a hook name such as "
                                          "blocks.1.hook_resid_post"),
                seed: int = SEED_OPT, device: str = DEVICE_OPT, dtype: str = DTYPE_OPT) -> None:
    """Concept directions from word pairs: leave-one-out test, Euclidean vs causal inner product."""
    from mechscope.geometry.concepts import linear_concepts

    m = load_model(model, device, dtype)
    r = linear_concepts(m, _concepts(m, pairs), space=space, seed=seed)
    table = Table(title=f"concept directions in {r.space}: held-out pairs above the random-pair 95th percentile")
    for col in ("concept", "pairs", "Euclidean", "causal", "LOO accuracy (causal)"):
        table.add_column(col)
    for e, c in zip(r.euclidean, r.causal, strict=True):
        table.add_row(e.name, str(e.n_pairs), f"{e.share_above:.2f}", f"{c.share_above:.2f}", f"{c.loo_accuracy:.2f}")
    console = Console()
    console.print(table)
    for i, a in enumerate(r.names):
        for j in range(i + 1, len(r.names)):
            console.print(f"cos({a}, {r.names[j]}): Euclidean {r.cos_euclidean[i, j]:+.3f}, causal "
                          f"{r.cos_causal[i, j]:+.3f}", markup=False)
    emit(r, json_path, html_path, title=f"Concept directions ({r.space}): {m.spec}")


@geometry_app.command("steer")
def steer_cmd(model: str = MODEL_ARG, json_path: Path = JSON_OPT, html_path: Path = HTML_OPT,
              concept: str = typer.Option(None, help="concept to steer (a built-in name or a --pairs file stem); "
                                          "default: the first"),
              pairs: list[Path] = PAIRS_OPT,
              hook: str = typer.Option(None, help="where to add α·v (default: the last block's resid_post)"),
              kind: str = typer.Option("causal", help="'causal' (Cov(γ)⁻¹γ̄) or 'euclidean' (γ̄) direction"),
              alpha: list[float] = typer.Option(None, "--alpha", help="steering strengths (× the stream's mean norm)"),
              prompt: list[str] = typer.Option(None, "--prompt", help="prompts to steer at their last position"),
              device: str = DEVICE_OPT, dtype: str = DTYPE_OPT) -> None:
    """Add α·v at a hook; target/base log-odds against α, off-target log-odds of the other concepts."""
    from mechscope.errors import InputError
    from mechscope.geometry.steering import DEFAULT_ALPHAS, DEFAULT_PROMPTS, steer, steering_direction

    m = load_model(model, device, dtype)
    concepts = _concepts(m, pairs)
    name = concept or next(iter(concepts))
    if name not in concepts:
        raise InputError(f"unknown concept {name!r}: choose one of {', '.join(concepts)}")
    r = steer(m, steering_direction(m, concepts[name], kind), concepts[name], hook=hook,
              off_target={k: v for k, v in concepts.items() if k != name}, prompts=prompt or DEFAULT_PROMPTS,
              alphas=alpha or DEFAULT_ALPHAS, kind=kind)
    table = Table(title=f"steering {name} at {r.hook} ({kind} direction; α × {r.scale:.2f})")
    for col in ("α", name, *r.off_target):
        table.add_column(col)
    for i, a in enumerate(r.alphas):
        table.add_row(f"{a:+.2f}", f"{r.target[i]:+.3f}", *(f"{v[i]:+.3f}" for v in r.off_target.values()))
    console = Console()
    console.print(table)
    console.print(f"slope {r.slope:+.3f} per unit α; off-target/target {r.selectivity:.3f}")
    emit(r, json_path, html_path, title=f"Steering {name}: {m.spec}")


@geometry_app.command("circle")
def circle_cmd(model: str = MODEL_ARG, json_path: Path = JSON_OPT, html_path: Path = HTML_OPT,
               cycle: str = typer.Option("days", help="'days' or 'months'"),
               token: str = typer.Option("start", help="where to read the circle: 'start' (the day/month word) or "
                                         "'answer' (the last position, labelled by the answer)"),
               components: int = typer.Option(5, help="PCA components under the circle probe"),
               mode: str = typer.Option("edit", help="intervention: 'edit' (move inside the circle plane) or "
                                        "'engels' (the paper's mean-activation patch)"),
               seed: int = SEED_OPT, device: str = DEVICE_OPT, dtype: str = DTYPE_OPT) -> None:
    """Circle probe of day/month tokens per layer, irreducibility indices, and the "move the day" intervention."""
    from mechscope.geometry.circle import circle_features

    m = load_model(model, device, dtype)
    r = circle_features(m, cycle, token=token, n_components=components, mode=mode, seed=seed)
    table = Table(title=f"{cycle} circle at the {token} token ({r.n_prompts} prompts; unedited accuracy "
                        f"{r.task_accuracy:.2f})")
    for col in ("hook", "R²", "held-out R²", "shuffled R²", "intervention accuracy"):
        table.add_column(col)
    for i, h in enumerate(r.hooks):
        table.add_row(h, f"{r.r2[i]:.3f}", f"{r.heldout_r2[i]:.3f}", f"{r.control_r2[i]:.3f}",
                      f"{r.intervention_accuracy[i]:.3f}")
    console = Console()
    console.print(table)
    console.print(f"at {r.best_hook}: order {r.order} ({'exact' if r.order_exact else 'not the calendar order'}); "
                  f"ε-mixture index {r.mixture_index:.3f}, separability index {r.separability_index:.3f} bits",
                  markup=False)
    emit(r, json_path, html_path, title=f"{cycle.capitalize()} circle: {m.spec}")
