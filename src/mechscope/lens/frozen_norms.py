"""Norms with a frozen scale: LayerNorm/RMSNorm whose data-dependent divisor is replaced by a constant.

A norm computes y = g((x - μ) / s(x)) with an affine g (weight and bias; no centring for RMSNorm).
Freezing it means y' = g((x - μ) / c) for a constant c, the norm's average s over data: the block
becomes linear in x. We get y' from the module's own output without knowing its parametrisation:

    y' = b + (s(x) / c) * (y - b),   b = g(0) = the module applied to a zero vector

which holds for LayerNorm, RMSNorm and Gemma's (1 + w) RMSNorm alike, and autograd sees the exact
linear map (the two s(x) cancel). Position 0 gets its own constant (its scale is usually an outlier).

Sites are named ``blocks.{L}.ln1``, ``blocks.{L}.ln2`` and ``ln_final``, as in the hook names.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from mechscope.errors import CheckpointError

FROZEN_NORMS_FILE = "frozen_norms.json"


@dataclasses.dataclass
class FrozenScale:
    """The constant that replaces one norm's divisor: `scale` for positions >= 1, `first_scale` for 0."""

    scale: float
    first_scale: float

    def per_position(self, n_pos: int, device) -> torch.Tensor:
        c = torch.full((n_pos, 1), self.scale, device=device)
        c[0] = self.first_scale
        return c


@dataclasses.dataclass
class FrozenNorms:
    """A set of frozen norms by site name. Apply with `applied(model)` or, for good, `attach(model)`."""

    scales: dict[str, FrozenScale] = dataclasses.field(default_factory=dict)

    def _hook(self, model, site: str):
        frozen = self.scales[site]

        def hook(module, args, output):
            x = args[0]
            offset = module.forward(x.new_zeros((1, x.shape[-1])))          # g(0): the bias (0 for RMSNorm)
            s = model.norm_scale(site, x)
            c = frozen.per_position(x.shape[-2], x.device)
            return (offset + (s / c) * (output.float() - offset)).to(output.dtype)
        return hook

    def attach(self, model) -> list:
        """Register the frozen norms on the model's norm modules; returns handles (call .remove())."""
        modules = model.norms()
        return [modules[site].register_forward_hook(self._hook(model, site)) for site in self.scales]

    @contextmanager
    def applied(self, model) -> Iterator[None]:
        handles = self.attach(model)
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def to_dict(self) -> dict:
        return {site: dataclasses.asdict(s) for site, s in self.scales.items()}


def calibrate(model, site: str, batches: list[torch.Tensor], frozen: FrozenNorms | None = None) -> FrozenScale:
    """Average divisor of the norm at `site` over token batches, with `frozen` norms already applied."""
    return calibrate_many(model, [site], batches, frozen)[site]


def calibrate_many(model, sites: list[str], batches: list[torch.Tensor],
                   frozen: FrozenNorms | None = None) -> dict[str, FrozenScale]:
    """Average divisor of each norm in `sites`, all measured in the same forward passes over `batches`
    with `frozen` norms applied (the others in `sites` still live). Cost: one forward per batch,
    whatever the number of sites."""
    sums = {site: [0.0, 0.0, 0, 0] for site in sites}   # total_first, total_rest, n_first, n_rest

    def observer(site: str):
        def observe(scale, _hook):
            s = scale[..., 0].double()                            # [batch pos]
            acc = sums[site]
            acc[0] += float(s[:, 0].sum())
            acc[1] += float(s[:, 1:].sum())
            acc[2] += s.shape[0]
            acc[3] += s[:, 1:].numel()
        return observe

    fwd = {f"{site}.hook_scale": observer(site) for site in sites}
    with torch.no_grad(), (frozen or FrozenNorms()).applied(model), model.hooks(fwd=fwd):
        for batch in batches:
            model(batch)
    out = {}
    for site, (total_first, total_rest, n_first, n_rest) in sums.items():
        first = total_first / max(n_first, 1)
        out[site] = FrozenScale(scale=total_rest / n_rest if n_rest else first, first_scale=first)
    return out


def save_norm_free(model, frozen: FrozenNorms, directory: str | Path) -> Path:
    """Write an HF checkpoint of the model's current weights plus frozen_norms.json, atomically
    (a temporary directory renamed into place)."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        model.hf_model.save_pretrained(tmp)
        model.tokenizer.save_pretrained(tmp)
        (tmp / FROZEN_NORMS_FILE).write_text(json.dumps(
            {"format": "mechscope-frozen-norms", "version": 1, "scales": frozen.to_dict()}, indent=2))
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(tmp, directory)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return directory


def load_norm_free(directory: str | Path, device: str | None = None):
    """Load a checkpoint written by `save_norm_free` as a HookedModel whose norms stay frozen."""
    import mechscope

    directory = Path(directory)
    path = directory / FROZEN_NORMS_FILE
    if not path.is_file():
        raise CheckpointError(f"{directory} has no {FROZEN_NORMS_FILE}: it is not a norm-free checkpoint "
                              "(make one with `mechscope lens remove-norms`)")
    try:
        spec = json.loads(path.read_text())["scales"]
        frozen = FrozenNorms({site: FrozenScale(**s) for site, s in spec.items()})
    except (ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"{path} is unreadable ({err})") from err
    model = mechscope.load(str(directory), **({"device": device} if device else {}))
    unknown = set(frozen.scales) - set(model.norms())
    if unknown:
        raise CheckpointError(f"{path} names norms this model lacks: {sorted(unknown)}")
    model.frozen_norms = frozen
    model._frozen_norm_handles = frozen.attach(model)
    return model
