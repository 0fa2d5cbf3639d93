"""Organisms shipped inside the package (src/mechscope/organisms/weights/<name>/)."""

from __future__ import annotations

from pathlib import Path

from mechscope.errors import ModelLoadError

DEFAULT_ORGANISM = "tiny-gpt2"
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def list_shipped() -> list[str]:
    """Names of the organisms whose weights are in the package."""
    if not WEIGHTS_DIR.is_dir():
        return []
    return sorted(p.name for p in WEIGHTS_DIR.iterdir() if (p / "config.json").is_file())


def shipped_path(name: str) -> Path:
    """Directory of a shipped organism: an HF checkpoint dir (from_pretrained works on it)."""
    path = WEIGHTS_DIR / name
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"no shipped organism named {name!r}; available: {list_shipped() or 'none'}. "
                             "Train one with `mechscope organism train PRESET --out DIR`")
    return path


def organism_file(path_or_name: str | Path, filename: str, how: str) -> Path:
    """`filename` inside an organism: given as the file itself, an organism directory, or a shipped
    name. `how` ends the error message: how such a file is made."""
    path = Path(path_or_name)
    if not path.exists():
        path = shipped_path(str(path_or_name))
    if path.is_dir():
        path = path / filename
    if not path.is_file():
        raise ModelLoadError(f"no {filename} at {path}; {how}")
    return path
