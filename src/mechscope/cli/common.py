"""What every command shares: the model argument, `--device`, `--dtype`, `--json`, `--html`, and the
one loader and writers behind them.

    @app.command("thing")
    def thing(model: str = MODEL_ARG, device: str = DEVICE_OPT, dtype: str = DTYPE_OPT,
              json_path: Path = JSON_OPT, html_path: Path = HTML_OPT) -> None:
        m = load_model(model, device, dtype)
        emit(result, json_path, html_path, title="thing")

Defaults are the same for every command: the shipped organism, CPU, float32. A device that does not
exist, a dtype the device cannot run or a device_map that cannot apply fails before the model loads,
with a message that says what to pass (model/devices.py).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer

from mechscope.model.devices import CANONICAL as DTYPES
from mechscope.model.devices import check_device, check_device_map, check_dtype  # noqa: F401 - the CLI's checks

MODEL_HELP = "HF model directory, hub id or organism:NAME (default: the shipped organism)"

MODEL_ARG = typer.Argument(None, help=MODEL_HELP)
MODEL_OPT = typer.Option(None, "--model", help=MODEL_HELP)
DEVICE_OPT = typer.Option("cpu", "--device", help="device to load the model on: cpu, cuda, cuda:N or mps")
DTYPE_OPT = typer.Option("float32", "--dtype", help=f"weights' dtype: {', '.join(DTYPES)} (or fp32, bf16, fp16)")
DEVICE_MAP_OPT = typer.Option(None, "--device-map", help="spread the model over devices (needs accelerate): auto, "
                              "balanced, balanced_low_0, sequential, or a JSON {module: device} map or file")
JSON_OPT = typer.Option(None, "--json", help="write the result as JSON here")
HTML_OPT = typer.Option(None, "--html", help="write the figures as a self-contained (offline) HTML page here")
TEXT_OPT = typer.Option(None, "--text", help="text file(s) (.txt or .txt.gz) to read; default: the bundled sample")
SEQ_OPT = typer.Option(64, "--seq-len", help="tokens per sequence")
NSEQ_OPT = typer.Option(16, "--n-sequences", help="sequences of text")
SEED_OPT = typer.Option(0, "--seed", help="seed for every random choice (text windows, sampling)")


PADDING_WARNING = "We strongly recommend passing in an `attention_mask`"


class _DropPaddingWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(PADDING_WARNING)


def silence_padding_warning() -> None:
    """Drop transformers' "pass an attention_mask" warning, and only it, in CLI runs.

    transformers warns whenever the pad id (often = BOS) is a sequence's first or last token. The
    model never sees unmasked padding here (HookedModel passes the mask whenever text is padded),
    so the warning is always spurious for us; passing an all-ones mask instead silences it too but
    made a forward pass 37% slower (tiny-gpt2, 16 × 128 tokens, CPU), so the message is filtered.
    """
    logger = logging.getLogger("transformers.modeling_utils")
    if not any(isinstance(f, _DropPaddingWarning) for f in logger.filters):
        logger.addFilter(_DropPaddingWarning())


def default_model_spec() -> str:
    from mechscope.organisms import DEFAULT_ORGANISM

    return f"organism:{DEFAULT_ORGANISM}"


def model_spec(spec: str | None) -> str:
    """The spec to load: the one given, else the shipped default organism."""
    return spec or default_model_spec()


def load_model(spec: str | None, device: str = "cpu", dtype: str = "float32", device_map: str | None = None):
    """The one CLI loader: validate device, dtype and device_map, then `mechscope.load` the spec
    (default organism)."""
    check_device(device)
    dtype = check_dtype(dtype, device)
    import mechscope

    return mechscope.load(model_spec(spec), device=device, dtype=dtype, device_map=device_map)


def write_json(path: Path | None, payload: Any) -> None:
    """Write `payload` (a Result, or anything `mechscope.io` can turn into JSON) when a path is given."""
    if path is None:
        return
    from mechscope.io import write_json_atomic

    write_json_atomic(path, payload.to_dict() if hasattr(payload, "to_dict") else payload)


def write_html(path: Path | None, title: str, figures: Sequence[Any], notes: Sequence[str] = ()) -> None:
    """A self-contained page (plotly inlined, no CDN) of `figures` when a path is given."""
    if path is None:
        return
    from mechscope.report.page import write_figures_page

    write_figures_page(path, title, figures, notes)


def emit(result, json_path: Path | None, html_path: Path | None, *, title: str, figures=None) -> None:
    """Write a Result's JSON and its figure (or `figures`) where asked."""
    write_json(json_path, result)
    write_html(html_path, title, figures if figures is not None else [result.figure()])


def text_tokens(model, seq_len: int, n_sequences: int, seed: int, text: list[Path] | None, split: str = "all"):
    """Seeded windows of the given text files (default: the bundled sample), from their `split` ("train":
    the first 80% of the tokens, "held_out": the last 20%): [n_sequences seq_len]. A seq_len beyond the
    model's context is an InputError that names the context."""
    from mechscope.data.text import eval_tokens

    return eval_tokens(model, seq_len=seq_len, n_sequences=n_sequences, seed=seed,
                       source=[str(p) for p in text] if text else None, split=split)


def text_batches(model, seq_len: int, n_sequences: int, seed: int, text: list[Path] | None,
                 split: str = "all") -> list:
    """`text_tokens` in batches of 8 sequences: a list of [batch seq_len]."""
    return list(text_tokens(model, seq_len, n_sequences, seed, text, split).split(8))


def per_layer_table(title: str, labels: list[str], columns: dict[str, list[float]]):
    """A rich table with one row per layer label and one column per named list of numbers."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("after block")
    for name in columns:
        table.add_column(name, justify="right")
    for i, label in enumerate(labels):
        table.add_row(label, *(f"{values[i]:.4f}" if i < len(values) else "" for values in columns.values()))
    return table
