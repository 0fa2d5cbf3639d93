"""The training card: what was trained, on what, how fast, and how well (JSON + loss-curve figure)."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

from mechscope.io import write_json_atomic, write_text_atomic

CARD_NAME = "training_card.json"
CURVE_NAME = "loss_curve.json"


def make_card(preset, history: dict, flops_per_token: float, corpus: dict, threads: int,
              n_params: int) -> dict[str, Any]:
    steps = len(history["loss"])
    tokens = history.get("tokens", steps * preset.tokens_per_step)  # token positions computed
    seconds = history["train_seconds"]
    achieved = flops_per_token * tokens / seconds if seconds else float("nan")
    peak = max(history["peak_flops"]) if history["peak_flops"] else float("nan")
    return {
        "name": preset.name,
        "description": preset.description,
        "preset": preset.to_dict(),
        "n_params": n_params,
        "reproduce": f"mechscope organism train {preset.name} --out RUN_DIR --text FILE_OR_FOLDER... "
                     "(dev: ../shared/corpora); then copy RUN_DIR/final",
        "corpus": corpus,
        "steps": steps,
        "tokens_seen": tokens,
        "train_seconds": seconds,
        "tokens_per_second": tokens / seconds if seconds else float("nan"),
        "flops_per_token": flops_per_token,
        "achieved_flops_per_second": achieved,
        "matmul_peak_flops_per_second": peak,
        "matmul_peak_measurements": history["peak_flops"],
        "fraction_of_peak": achieved / peak,
        "threads": threads,
        "machine": {"processor": platform.processor() or platform.machine(), "python": platform.python_version()},
        "final_loss": sum(history["loss"][-20:]) / max(1, len(history["loss"][-20:])),
        "final_metrics": history["evals"][-1] if history["evals"] else {},
        "evals": history["evals"],
        "loss_curve": history["loss"],
    }


def loss_curve_figure(card: dict):
    """Training loss per step and held-out text loss at each evaluation (plotly Figure)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_scatter(y=card["loss_curve"], x=list(range(1, len(card["loss_curve"]) + 1)), name="train loss",
                    mode="lines")
    evals = [e for e in card["evals"] if "heldout_text_loss" in e]
    fig.add_scatter(x=[e["step"] for e in evals], y=[e["heldout_text_loss"] for e in evals],
                    name="held-out natural text loss", mode="lines+markers")
    fig.update_layout(title=f"{card['name']}: training loss", xaxis_title="step", yaxis_title="loss (nats)")
    return fig


def write_card(directory: str | Path, card: dict) -> None:
    directory = Path(directory)
    write_json_atomic(directory / CARD_NAME, card)
    write_text_atomic(directory / CURVE_NAME, loss_curve_figure(card).to_json())


def read_card(directory: str | Path) -> dict:
    return json.loads((Path(directory) / CARD_NAME).read_text(encoding="utf-8"))
