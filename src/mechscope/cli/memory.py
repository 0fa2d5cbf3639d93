"""`mechscope memory trace|edit|neurons`: causal tracing, ROME / MEMIT edits, MLP unit keys and values."""

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
    SEED_OPT,
    SEQ_OPT,
    TEXT_OPT,
    emit,
    load_model,
    text_tokens,
)

memory_app = typer.Typer(help="MLPs as memories: causal tracing, ROME / MEMIT edits, unit keys and values.",
                         no_args_is_help=True)
PROMPT_OPT = typer.Option(None, help="a prompt ending right before the answer; default: the model's known facts")
SUBJECT_OPT = typer.Option(None, help="the subject, exactly as written in the prompt")


def _fact(model, prompt: str | None, subject: str | None, target: str | None):
    from mechscope.errors import InputError
    from mechscope.memory.facts import last_token_logits
    from mechscope.memory.prompts import Fact

    if prompt is None:
        return None
    if not subject:
        raise InputError("--prompt needs --subject (the subject as written in the prompt)")
    if target is None:
        target = model.tokenizer.decode([int(last_token_logits(model, [prompt])[0].argmax())])
    return Fact(prompt, subject, target)


@memory_app.command("trace")
def trace_cmd(model: str = MODEL_ARG, prompt: str = PROMPT_OPT, subject: str = SUBJECT_OPT,
              target: str = typer.Option(None, help="one-token answer to trace (default: the model's top-1)"),
              n_facts: int = typer.Option(30, help="known facts to trace when no --prompt is given"),
              kinds: str = typer.Option("resid,mlp,attn", help="states to restore: resid, mlp, attn"),
              window: int = typer.Option(None, help="layers restored together for mlp/attn (default n_layers//5, ≤10)"),
              samples: int = typer.Option(10, help="noise draws per prompt"),
              noise_scale: float = typer.Option(3.0, help="noise std as a multiple of the embedding std"),
              seed: int = typer.Option(1, help="seed of the noise"),
              json_path: Path = JSON_OPT, html_path: Path = HTML_OPT, device: str = DEVICE_OPT,
              dtype: str = DTYPE_OPT) -> None:
    """Noise the subject, restore one state per (layer, position), print where recall comes back."""
    from mechscope.memory.facts import known_facts
    from mechscope.memory.trace_summary import trace_facts
    from mechscope.memory.tracing import TraceConfig, causal_trace

    m = load_model(model, device, dtype)
    config = TraceConfig(kinds=tuple(k.strip() for k in kinds.split(",") if k.strip()), window=window,
                         n_samples=samples, noise_scale=noise_scale, seed=seed)
    console = Console()
    fact = _fact(m, prompt, subject, target)
    if fact is not None:
        result = causal_trace(m, fact, config)
        console.print(f"P({result.answer!r}): clean {result.p_clean:.4f}, subject noised {result.p_corrupt:.4f}")
        for kind in result.kinds:
            ie = result.indirect_effect(kind)
            layer, pos = divmod(int(ie.argmax()), ie.shape[1])
            console.print(f"  {kind:>5}: largest indirect effect {float(ie.max()):+.4f} at layer {layer}, "
                          f"position {pos} {result.tokens[pos]!r}")
    else:
        result = trace_facts(m, known_facts(m)[:n_facts], config)
        table = Table(title=f"mean indirect effect over {result.n_facts} facts ({result.seconds:.1f} s): "
                            f"P clean {result.p_clean:.3f}, noised {result.p_corrupt:.3f}")
        table.add_column("kind")
        table.add_column("layer", justify="right")
        for role in result.roles:
            table.add_column(role, justify="right")
        for kind, effects in result.effects.items():
            for layer in range(effects.shape[0]):
                table.add_row(kind, str(layer), *(f"{float(v):+.3f}" for v in effects[layer]))
        console.print(table)
    emit(result, json_path, html_path, title=f"Causal trace: {m.spec}")


@memory_app.command("edit")
def edit_cmd(model: str = MODEL_ARG, prompt: str = PROMPT_OPT, subject: str = SUBJECT_OPT,
             target: str = typer.Option(None, help="the new one-token answer (leading space: ' Rome')"),
             paraphrase: list[str] = typer.Option(None, help="other prompts of the same fact, scored after the edit"),
             method: str = typer.Option("rome", help="rome (one layer) or memit (several)"),
             layers: str = typer.Option("1", help="layer(s) to edit, comma-separated (memit: two or more); rome: "
                                        "'auto' edits each fact where its MLP writes most toward its answer"),
             n_facts: int = typer.Option(30, help="without --prompt: this many counterfactual rewrites of known facts"),
             cov_tokens: int = typer.Option(100_000, help="tokens for E[kkᵀ]"),
             covariance_weight: float = typer.Option(1.0e4, help="MEMIT's λ on E[kkᵀ]"),
             position: str = typer.Option("subject_last", help="where the key is read: subject_last or last (token)"),
             damping: float = typer.Option(0.0, help="C + damping·mean(diag C)·I (for units that never fire on text)"),
             prefixes: int = typer.Option(10, help="sampled context prefixes k* and v* are averaged over (0: the "
                                                   "plain prompt only, for small models that lose the fact after them)"),
             stop_loss: float = typer.Option(0.05, help="stop fitting v* once its loss is below this (higher: a "
                                                        "gentler edit, fewer neighbours flipped)"),
             save: Path = typer.Option(None, "--save", help="write the edited model to this NEW directory"),
             seed: int = SEED_OPT, json_path: Path = JSON_OPT, html_path: Path = HTML_OPT,
             device: str = DEVICE_OPT, dtype: str = DTYPE_OPT) -> None:
    """Edit facts with ROME or MEMIT, print the edit scores; the model on disk is never changed
    (--save writes a new checkpoint)."""
    from mechscope.data.text import eval_tokens
    from mechscope.errors import InputError
    from mechscope.memory.edit_metrics import edit_scores, heldout_loss
    from mechscope.memory.facts import Rewrite, counterfactuals, last_token_logits
    from mechscope.memory.memit import MemitConfig, memit
    from mechscope.memory.prompts import Fact
    from mechscope.memory.rome import RomeConfig, rome
    from mechscope.memory.targets import ShiftConfig

    m = load_model(model, device, dtype)
    auto = layers.strip() == "auto"
    if auto and method != "rome":
        raise InputError("--layers auto is for ROME; MEMIT needs its layers listed (e.g. --layers 1,2)")
    layer_list = [] if auto else [int(x) for x in layers.split(",") if x.strip()]
    if prompt is not None:
        if not subject or not target:
            raise InputError("--prompt needs --subject and --target (the new answer)")
        old = m.tokenizer.decode([int(last_token_logits(m, [prompt])[0].argmax())])
        rewrites = [Rewrite(Fact(prompt, subject, old, paraphrases=tuple(paraphrase or ())), target)]
    else:
        rewrites = counterfactuals(m, n_facts, seed=seed)
    shift = ShiftConfig(position=position, seed=seed, n_prefixes=prefixes, stop_loss=stop_loss)
    held = eval_tokens(m, seq_len=min(64, m.cfg.n_ctx), n_sequences=16, seed=seed + 1)
    loss_before = heldout_loss(m, held)
    if method == "rome":
        if not auto and len(layer_list) != 1:
            raise InputError(f"ROME edits one layer; got --layers {layers} (or pass --layers auto)")
        from mechscope.memory.covariance import key_covariance
        from mechscope.memory.neurons import writing_layer

        fact_layers = [writing_layer(m, rw.fact, position) for rw in rewrites] if auto else layer_list * len(rewrites)
        covs = key_covariance(m, sorted(set(fact_layers)), cov_tokens, seed=seed)
        per: dict[str, list[float]] = {}
        edit = None
        for i, (rw, layer) in enumerate(zip(rewrites, fact_layers, strict=True)):
            edit = rome(m, rw, layer, RomeConfig(shift=shift, damping=damping, seed=seed), covariance=covs[layer])
            for k, v in edit_scores(m, [rw]).items():
                per.setdefault(k, []).append(v)
            if i < len(rewrites) - 1:
                edit.undo()
        scores = {k: sum(v) / len(v) for k, v in per.items()}
    elif method == "memit":
        edit = memit(m, rewrites, layer_list, MemitConfig(shift=shift, covariance_weight=covariance_weight,
                                                          damping=damping, n_cov_tokens=cov_tokens, seed=seed))
        scores = edit_scores(m, rewrites)
    else:
        raise InputError(f"unknown --method {method!r}: use rome or memit")
    scores["heldout_loss_change"] = heldout_loss(m, held) - loss_before
    edit.metrics.update(scores)
    console = Console()
    what = "each applied alone, then undone" if method == "rome" and len(rewrites) > 1 else "applied"
    where = sorted(set(fact_layers)) if method == "rome" else edit.layers
    console.print(f"{method.upper()} at layers {where} on {len(rewrites)} fact(s) ({what}; held-out loss after "
                  f"the {'last edit' if method == 'rome' else 'edit'}):")
    for k, v in scores.items():
        console.print(f"  {k:<22} {v:.4f}")
    if save:
        if method == "rome" and len(rewrites) > 1:
            raise InputError("--save with several ROME edits would keep only the last; use --method memit")
        console.print(f"wrote the edited model to {edit.save(save)}")
    emit(edit, json_path, html_path, title=f"{edit.method} edit: {m.spec}")


@memory_app.command("neurons")
def neurons_cmd(model: str = MODEL_ARG, layer: int = typer.Option(..., help="MLP layer"),
                units: str = typer.Option(..., help="unit indices, comma-separated"),
                k: int = typer.Option(10, "-k", "--top", help="contexts and tokens shown per unit"),
                text: list[Path] = TEXT_OPT, seq_len: int = SEQ_OPT, n_sequences: int = typer.Option(64, "--n-sequences"),
                seed: int = SEED_OPT, json_path: Path = JSON_OPT, html_path: Path = HTML_OPT,
                device: str = DEVICE_OPT, dtype: str = DTYPE_OPT) -> None:
    """Keys (top-activating contexts) and values (vocabulary projection of W_out) of MLP units."""
    from mechscope.memory.neurons import unit_keys_values

    m = load_model(model, device, dtype)
    tokens = text_tokens(m, seq_len, n_sequences, seed, text)
    result = unit_keys_values(m, layer, [int(u) for u in units.split(",") if u.strip()], tokens, k=k)
    console = Console()
    for label, ctx, top, bottom in zip(result.labels, result.top_contexts, result.value_top, result.value_bottom,
                                       strict=True):
        console.print(f"[bold]layer {result.layer} {label}[/bold]")
        for c in ctx:
            console.print(f"  {c['activation']:+.3f}  {c['context']!r}", markup=False)
        console.print("  value promotes: " + ", ".join(f"{t!r} {v:+.2f}" for t, v in top), markup=False)
        console.print("  value demotes:  " + ", ".join(f"{t!r} {v:+.2f}" for t, v in bottom), markup=False)
    emit(result, json_path, html_path, title=f"MLP keys and values: {m.spec}, layer {result.layer}")


def register(app: typer.Typer) -> None:
    app.add_typer(memory_app, name="memory")
