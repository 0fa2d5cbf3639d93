"""The tuned lens (Belrose et al. 2023, arXiv 2303.08112): an affine translator per residual point.

Translator i maps h to h + A_i h + b_i before the model's final norm and unembedding. A and b start
at zero, so an untrained tuned lens *is* the logit lens; training minimises KL(final || lens) with
the model frozen. Stored as ``tuned_lens.safetensors`` (A [n_points d d], b [n_points d]) plus
``tuned_lens.json`` (sizes, labels, the model it was trained on).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn

from mechscope.errors import CheckpointError, InputError
from mechscope.io import atomic_path, write_json_atomic

WEIGHTS_FILE = "tuned_lens.safetensors"
CONFIG_FILE = "tuned_lens.json"


class TunedLens(nn.Module):
    """Per-point affine translators h -> h + h A_i^T + b_i for n_points residual points.

    A: [n_points d_model d_model], b: [n_points d_model], both zero at initialisation.
    """

    def __init__(self, n_points: int, d_model: int, model_name: str = ""):
        super().__init__()
        self.A = nn.Parameter(torch.zeros(n_points, d_model, d_model))
        self.b = nn.Parameter(torch.zeros(n_points, d_model))
        self.model_name = model_name

    @property
    def n_points(self) -> int:
        return self.A.shape[0]

    @property
    def d_model(self) -> int:
        return self.A.shape[1]

    @classmethod
    def for_model(cls, model) -> TunedLens:
        """A zero (= logit lens) translator for each of the model's n_layers + 1 residual points."""
        lens = cls(model.cfg.n_layers + 1, model.cfg.d_model, model_name=_model_name(model))
        return lens.to(model.device)

    def translate(self, point: int, resid: torch.Tensor) -> torch.Tensor:
        """resid [... d_model] at residual point `point` -> translated resid [... d_model]."""
        resid_f = resid.to(self.A.dtype)
        return (resid_f + resid_f @ self.A[point].T + self.b[point]).to(resid.dtype)

    def save(self, directory: str | Path) -> Path:
        """Write weights (safetensors) and config (json) into `directory`, atomically."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(directory / WEIGHTS_FILE) as tmp:
            save_file({"A": self.A.detach().cpu().contiguous(), "b": self.b.detach().cpu().contiguous()},
                      str(tmp))
        write_json_atomic(directory / CONFIG_FILE, {
            "format": "mechscope-tuned-lens", "version": 1, "n_points": self.n_points,
            "d_model": self.d_model, "model_name": self.model_name,
        })
        return directory

    @classmethod
    def load(cls, directory: str | Path, model=None) -> TunedLens:
        """Read a lens written by `save`; with `model`, check it fits and move it to its device."""
        from safetensors.torch import load_file

        directory = Path(directory)
        try:
            config = json.loads((directory / CONFIG_FILE).read_text())
            tensors = load_file(str(directory / WEIGHTS_FILE))
        except FileNotFoundError as err:
            raise CheckpointError(f"no tuned lens in {directory}: expected {CONFIG_FILE} and {WEIGHTS_FILE} "
                                  "(train one with `mechscope lens tuned-train`)") from err
        except Exception as err:  # safetensors raises its own types for truncated files
            raise CheckpointError(f"the tuned lens in {directory} is unreadable ({err}); retrain it") from err
        lens = cls(config["n_points"], config["d_model"], config.get("model_name", ""))
        if tensors["A"].shape != lens.A.shape or tensors["b"].shape != lens.b.shape:
            raise CheckpointError(f"the tuned lens in {directory} has tensors of the wrong shape for its config")
        with torch.no_grad():
            lens.A.copy_(tensors["A"])
            lens.b.copy_(tensors["b"])
        if model is not None:
            if (lens.n_points, lens.d_model) != (model.cfg.n_layers + 1, model.cfg.d_model):
                raise InputError(
                    f"this tuned lens has {lens.n_points} points of width {lens.d_model}, but the model has "
                    f"{model.cfg.n_layers + 1} of width {model.cfg.d_model}: it was trained on another model "
                    f"({lens.model_name or 'unknown'})")
            lens = lens.to(model.device)
        return lens


def _model_name(model) -> str:
    return str(getattr(model.hf_model.config, "_name_or_path", "") or model.cfg.hf_class)
