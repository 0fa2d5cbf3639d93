"""Load an organism (shipped name or directory) as plain HF objects + its ground truth."""

from __future__ import annotations

from pathlib import Path

from mechscope.errors import ModelLoadError
from mechscope.organisms.shipped import shipped_path
from mechscope.organisms.world import GroundTruth, load_ground_truth


def organism_dir(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    return path if path.is_dir() else shipped_path(str(name_or_path))


def load_organism(name_or_path: str | Path) -> tuple[object, object, GroundTruth]:
    """(HF model in eval mode, tokenizer, GroundTruth) of a shipped name or an organism directory."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = organism_dir(name_or_path)
    try:
        model = AutoModelForCausalLM.from_pretrained(path)
        tokenizer = AutoTokenizer.from_pretrained(path)
    except Exception as err:
        raise ModelLoadError(f"could not load the organism at {path} ({type(err).__name__}: {err}); "
                             "re-export it with `mechscope organism export RUN_DIR`") from err
    return model.eval(), tokenizer, load_ground_truth(path)
