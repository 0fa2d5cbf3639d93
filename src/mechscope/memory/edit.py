"""A weight edit of MLP down projections that can be undone exactly, and the checks before one.

`apply_edit` validates first (layers in range, no down-projection weight shared with another
parameter slot, finite deltas), keeps a copy of every weight it will touch, then adds the deltas;
`Edit.undo()` copies the originals back, so the model is restored bit for bit. `Edit.save(dir)`
writes the edited model as a new HF checkpoint directory (never over the model's own).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from mechscope.errors import InputError
from mechscope.memory.prompts import check_layer
from mechscope.results import Result


def check_not_shared(model, layer: int) -> None:
    """InputError when layer's W_out is also another parameter slot (tied or shared weights): an edit
    there would silently change those too."""
    weight = model.W_out_parameter(layer)
    ptr = weight.untyped_storage().data_ptr()
    slots = [name for name, p in model.hf_model.named_parameters(remove_duplicate=False)
             if p.untyped_storage().data_ptr() == ptr]
    if len(slots) > 1:
        raise InputError(f"the down projection of layer {layer} shares its storage with {slots}: an edit would "
                         "change every one of them. Untie the weights (clone them per layer) first, or edit "
                         "another layer")


@dataclasses.dataclass
class Edit(Result):
    """Deltas added to W_out ([d_mlp d_model] per layer, the W_out view's layout) and what they were for.

    metrics: scores measured by the method that made the edit (see `mechscope.memory.edit_metrics`).
    details: per-method numbers (keys, values, losses) for inspection; tensors stay out of JSON.
    """

    _json_exclude = ("deltas", "details", "_model", "_originals")

    method: str
    layers: list[int]
    deltas: dict[int, torch.Tensor]
    requests: list[dict[str, Any]]
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    details: dict[str, Any] = dataclasses.field(default_factory=dict)
    applied: bool = True
    _model: Any = None
    _originals: dict[int, torch.Tensor] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["delta_norms"] = {layer: float(d.norm()) for layer, d in self.deltas.items()}
        # rank counted down to 1e-5 of the largest singular value (the deltas are stored in float32)
        out["delta_ranks"] = {layer: int(torch.linalg.matrix_rank(d.double(), rtol=1e-5))
                              for layer, d in self.deltas.items()}
        return out

    def add(self, layer: int, delta: torch.Tensor) -> None:
        """Add delta ([d_mlp d_model]) to W_out[layer] (a layer given to `begin_edit`)."""
        shape = (self._model.cfg.d_mlp, self._model.cfg.d_model)
        if layer not in self._originals:
            raise InputError(f"layer {layer} is not among this edit's layers {self.layers}")
        if tuple(delta.shape) != shape or not bool(torch.isfinite(delta).all()):
            self.undo()
            raise InputError(f"the {self.method} update for layer {layer} is {tuple(delta.shape)} or not finite; "
                             f"the edit was undone (expected a finite {shape} delta)")
        self._model.add_to_W_out(layer, delta)
        self.deltas[layer] = self.deltas[layer] + delta if layer in self.deltas else delta

    def undo(self) -> None:
        """Put back the weights as they were before the edit, bit for bit."""
        if not self.applied:
            return
        with torch.no_grad():
            for layer, original in self._originals.items():
                self._model.W_out_parameter(layer).copy_(original)
        self.applied = False

    def save(self, directory: str | Path) -> Path:
        """Write the edited model (weights + tokenizer) to a new directory; refuses an existing,
        non-empty one and the model's own directory."""
        directory = Path(directory)
        spec = str(self._model.spec or "")
        if directory.exists() and any(directory.iterdir()):
            raise InputError(f"{directory} exists and is not empty; edits are written to a new directory only")
        if spec and Path(spec).exists() and Path(spec).resolve() == directory.resolve():
            raise InputError("refusing to write the edit over the model's own checkpoint; pass another --save DIR")
        directory.mkdir(parents=True, exist_ok=True)
        self._model.hf_model.save_pretrained(directory, safe_serialization=True)
        self._model.tokenizer.save_pretrained(directory)
        self.save_json(directory / "edit.json")
        return directory

    def figure(self):
        import plotly.graph_objects as go

        names = [k for k, v in self.metrics.items() if isinstance(v, float)]
        fig = go.Figure(go.Bar(x=names, y=[self.metrics[k] for k in names]))
        fig.update_layout(title=f"{self.method} edit of {len(self.requests)} fact(s) at layers {self.layers}",
                          yaxis_title="score")
        return fig


def validate_layers(model, layers: list[int]) -> list[int]:
    layers = [check_layer(model, layer) for layer in layers]
    if len(set(layers)) != len(layers):
        raise InputError(f"layers {layers} repeat a layer")
    for layer in layers:
        check_not_shared(model, layer)
    return layers


def begin_edit(model, method: str, layers: list[int], requests: list[dict[str, Any]]) -> Edit:
    """Check `layers` and keep a copy of their W_out; deltas are then added with `Edit.add`. A method
    that fails half-way calls `undo()`, so a failed edit changes nothing."""
    layers = validate_layers(model, layers)
    originals = {layer: model.W_out_parameter(layer).detach().clone() for layer in layers}
    return Edit(method=method, layers=layers, deltas={}, requests=requests, _model=model, _originals=originals)


def apply_edit(model, method: str, deltas: dict[int, torch.Tensor], requests: list[dict[str, Any]],
               details: dict[str, Any] | None = None) -> Edit:
    """Check and add `deltas` (layer -> [d_mlp d_model]) to the model's W_out; return the undoable Edit."""
    edit = begin_edit(model, method, list(deltas), requests)
    for layer, d in deltas.items():
        edit.add(layer, d)
    edit.details.update(details or {})
    return edit
