"""The model card and the run metadata shown in (and saved with) a report.

Both are plain JSON-able dicts. The model card reads the model only through the HookedModel
surface (cfg, hf_model parameters, hook_names, tokenizer); any part that a model does not offer is
left out rather than failing the report.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import platform
import sys
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from mechscope.claims.base import Budget

_CFG_FIELDS = ("arch", "hf_class", "n_params", "n_layers", "d_model", "n_heads", "n_kv_heads", "d_head",
               "d_mlp", "d_vocab", "n_ctx", "positional", "norm", "act_fn", "gated_mlp", "parallel_attn_mlp",
               "tied_embeddings")


def model_card(model, spec: str | None = None) -> dict[str, Any]:
    """{"spec", "name", "arch", n_layers…, "n_params", "n_hooks", "tokenizer", "vocab_size", "dtype", "device"}."""
    card: dict[str, Any] = {"spec": spec if spec is not None else _try(lambda: model.spec)}
    hf = getattr(model, "hf_model", None)
    card["name"] = _display_name(_try(lambda: hf.config.name_or_path) or card["spec"])
    cfg = getattr(model, "cfg", None)
    for name in _CFG_FIELDS:
        if cfg is not None and hasattr(cfg, name):
            card[name] = getattr(cfg, name)
    if card.get("n_params") is None:
        card["n_params"] = _try(lambda: sum(p.numel() for p in hf.parameters()))
    card.setdefault("hf_class", type(hf).__name__ if hf is not None else None)
    card["n_hooks"] = _try(lambda: len(model.hook_names()))
    tok = getattr(model, "tokenizer", None)
    card["tokenizer"] = type(tok).__name__ if tok is not None else None
    card["vocab_size"] = _try(lambda: len(tok))
    card["dtype"] = _try(lambda: str(model.dtype).replace("torch.", ""))
    card["device"] = _try(lambda: str(model.device))
    return {k: v for k, v in card.items() if v is not None}


def run_metadata(budget: Budget, started: dt.datetime, seconds: float,
                 claim_ids: list[str] | None = None, command: str | None = None) -> dict[str, Any]:
    """Versions, seed, budget, start time (UTC, ISO 8601) and duration of a report run."""
    return {
        "started_utc": started.astimezone(dt.timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(seconds, 2),
        "seed": budget.seed,
        "budget": dataclasses.asdict(budget),
        "claims_requested": claim_ids,
        "command": command,
        "versions": versions(),
    }


def versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0], "platform": platform.platform(terse=True)}
    for dist in ("mechscope", "torch", "transformers", "numpy", "plotly"):
        try:
            out[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _display_name(name: str | None) -> str | None:
    """A local checkpoint directory is named by its folder; hub ids stay as they are."""
    if name and os.path.isdir(name):
        return Path(name).resolve().name
    return name


def _try(fn):
    try:
        return fn()
    except Exception:  # noqa: BLE001 - a card field a model lacks is simply left out
        return None
