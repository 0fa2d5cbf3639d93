"""Training checkpoints: one file, written atomically, loaded safely (weights_only=True).

A checkpoint holds the model and optimizer state, the step, the torch RNG state and the
training history, so a resumed run continues exactly where the saved one stopped. The data
position is a pure function of (seed, step), so it needs no state of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mechscope.errors import CheckpointError
from mechscope.io import atomic_path

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT_VERSION = 1


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write `state` to `path` via a temp file + rename: an interrupted save leaves the old file."""
    state = {**state, "format_version": FORMAT_VERSION}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return Path(path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; start a fresh run or pass the run directory "
                              "that `mechscope organism train` wrote")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, garbage bytes, pickle errors...
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({type(err).__name__}: {err}); "
                              "delete it to restart the run from scratch") from err
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} is not a mechscope organism checkpoint (format "
                              f"version {FORMAT_VERSION}); delete it to restart the run")
    missing = {"model", "optimizer", "step", "torch_rng", "history", "preset"} - set(state)
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {sorted(missing)}; delete it to restart the run")
    return state
