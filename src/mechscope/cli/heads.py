"""`mechscope heads MODEL`: head detector scores; `mechscope attention MODEL TEXT`: pattern viewer."""

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
    load_model,
    write_html,
    write_json,
)

DETECTORS = ("previous-token", "duplicate-token", "induction", "lookback", "lagged-induction", "copying",
             "name-mover")


def heads(
    model: str = MODEL_ARG,
    detector: str = typer.Option("all", help=f"one of {', '.join(DETECTORS)} or 'all'"),
    top: int = typer.Option(5, help="heads to list per detector"),
    n_sequences: int = typer.Option(16, help="repeated random-token sequences"),
    half_len: int = typer.Option(24, help="tokens per copy (at most (n_ctx - 1) // 2)"),
    seed: int = typer.Option(0),
    json_path: Path = JSON_OPT,
    html_path: Path = HTML_OPT,
    device: str = DEVICE_OPT,
    dtype: str = DTYPE_OPT,
) -> None:
    """Score every head as previous-token, duplicate-token, induction, lookback, lagged-induction, copying
    and name-mover head (lagged detectors also report the best lag)."""
    from mechscope.attention import head_report, name_mover_scores
    from mechscope.errors import InputError, NotApplicableError
    from mechscope.tasks.ioi import ioi_task

    if detector != "all" and detector not in DETECTORS:
        raise InputError(f"unknown detector {detector!r}: use one of {', '.join(DETECTORS)} or 'all'")
    m = load_model(model, device, dtype)
    longest = (m.cfg.n_ctx - 1) // 2
    if not 1 <= half_len <= longest:
        raise InputError(f"--half-len {half_len}: two copies and a BOS must fit the model's context of "
                         f"{m.cfg.n_ctx} tokens; use 1..{longest}")
    report = head_report(m, n_sequences=n_sequences, half_len=half_len, seed=seed)
    scores = dict(report.scores)
    notes = {}
    if detector in ("all", "name-mover"):
        try:
            scores["name-mover"] = name_mover_scores(m, ioi_task(m, n_prompts=32, seed=seed)).as_head_scores()
        except NotApplicableError as err:
            notes["name-mover"] = f"not applicable: {err}"
    chosen = DETECTORS if detector == "all" else (detector,)
    console = Console()
    table = Table(title=f"top heads ({model or 'default organism'})")
    table.add_column("detector")
    table.add_column(f"top {top} heads (layer.head: score)")
    for name in chosen:
        if name in scores:
            lags = scores[name].lags
            table.add_row(name, ", ".join(f"{a}.{b}: {s:.2f}" + ("" if lags is None else f" (lag {int(lags[a, b])})")
                                          for a, b, s in scores[name].top(top)))
        else:
            table.add_row(name, notes.get(name, "-"))
    console.print(table)
    console.print(f"loss on repeated random tokens: first copy {report.repeat.first_copy_loss:.2f}, "
                  f"second copy {report.repeat.second_copy_loss:.2f} nats (drop {report.repeat.drop:.2f}); "
                  f"ICL score (loss at position {report.icl.late} minus position {report.icl.early}): "
                  f"{report.icl.score:.2f}")
    write_json(json_path, {
        "model": model, "scores": {k: v.scores for k, v in scores.items() if k in chosen},
        "lags": {k: v.lags for k, v in scores.items() if k in chosen and v.lags is not None},
        "top": {k: v.top(top) for k, v in scores.items() if k in chosen}, "notes": notes,
        "repeat_loss": report.repeat.to_dict(), "icl": report.icl.to_dict()})
    figures = [report.figure()] + ([scores["name-mover"].figure()] if "name-mover" in scores else [])
    write_html(html_path, f"Head detectors: {m.spec}", figures)


def attention(
    text: str = typer.Argument(..., help="the text whose attention patterns to show"),
    model: str = MODEL_OPT,
    out: Path = typer.Option(Path("attention.html"), help="HTML file to write"),
    json_path: Path = typer.Option(None, "--json", help="also write the tokens and patterns as JSON"),
    device: str = DEVICE_OPT,
    dtype: str = DTYPE_OPT,
) -> None:
    """Write a static HTML viewer of every layer's and head's attention pattern on TEXT."""
    from mechscope.attention import attention_patterns, save_attention_html

    m = load_model(model, device, dtype)
    save_attention_html(out, m, text, title=f"attention: {model or 'default organism'}")
    Console().print(f"wrote {out}")
    if json_path:
        tokens = m.to_tokens(text)
        write_json(json_path, {"tokens": m.to_str_tokens(tokens[0]), "patterns": attention_patterns(m, tokens)[:, 0]})


def register(app: typer.Typer) -> None:
    app.command("heads")(heads)
    app.command("attention")(attention)
