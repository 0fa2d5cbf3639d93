"""Norms with a frozen scale: LayerNorm/RMSNorm whose data-dependent divisor is replaced by a constant.

A norm computes y = g((x - μ) / s(x)) with an affine g (weight and bias; no centring for RMSNorm).
Freezing it means y' = g((x - μ) / c) for a constant c, the norm's average s over data: the block
becomes linear in x. We get y' from the module's own output without knowing its parametrisation:

    y' = b + (s(x) / c) * (y - b),   b = g(0) = the module applied to a zero vector

which holds for LayerNorm, RMSNorm and Gemma's (1 + w) RMSNorm alike, and autograd sees the exact
linear map (the two s(x) cancel).

The constant is per position: c_0, the norm's average divisor at position 0 over the calibration
sequences (usually an outlier: in real models the first token's residual norm reaches ~10^4), and for
p >= 1 the average divisor at p shrunk towards the average over all positions >= 1 as far as the
spread between positions is noise (`shrunk_position_means`), that average beyond the calibrated length. One
constant for all positions is not numerically safe: the divisor of a causal network falls with position
(attention averages over more values), and a gated MLP without a norm squares whatever excess a
position carries at every block, so a 12-block random-init LLaMA overflows within 8 blocks at positions
whose divisor is above the average. Per position, the frozen model is still linear in x.

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

from mechscope.data.activation_store import capture_activations
from mechscope.errors import CheckpointError

FROZEN_NORMS_FILE = "frozen_norms.json"


@dataclasses.dataclass
class FrozenScale:
    """The constants that replace one norm's divisor.

    scale: the average divisor over positions >= 1 (used beyond the calibrated positions).
    first_scale: the average divisor at position 0.
    positions: the average divisor at each calibrated position 0..P-1 (None: `scale` at every position
        >= 1, as checkpoints written before per-position scales have it).
    """

    scale: float
    first_scale: float
    positions: list[float] | None = None

    def per_position(self, n_pos: int, device) -> torch.Tensor:
        """The divisor at each position, [n_pos 1] (fp32)."""
        c = torch.full((n_pos, 1), self.scale, device=device)
        if self.positions is not None:
            known = min(n_pos, len(self.positions))
            c[:known, 0] = torch.tensor(self.positions[:known], dtype=c.dtype, device=device)
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
    whatever the number of sites, stopped once the deepest of them is read (the blocks after it and the
    unembedding are never run)."""
    sums: dict[str, torch.Tensor] = {}     # site -> [3 pos] float64: sum, sum of squares, count, per position
    names = [f"{site}.hook_scale" for site in sites]
    with torch.no_grad(), (frozen or FrozenNorms()).applied(model):
        for batch in batches:
            scales = capture_activations(model, batch, names, dtype=torch.float64)   # stops at the deepest
            for site, name in zip(sites, names, strict=True):
                s = scales[name].view(batch.shape[0], -1)                              # [batch pos]
                acc = sums.get(site)
                if acc is None or acc.shape[1] < s.shape[1]:
                    grown = torch.zeros(3, s.shape[1], dtype=torch.float64)
                    if acc is not None:
                        grown[:, :acc.shape[1]] = acc
                    acc = sums[site] = grown
                acc[0, :s.shape[1]] += s.sum(0)
                acc[1, :s.shape[1]] += s.square().sum(0)
                acc[2, :s.shape[1]] += s.shape[0]
    out = {}
    for site in sites:
        total, squares, count = sums[site]
        first = float(total[0] / count[0])
        rest = float(total[1:].sum() / count[1:].sum()) if total.shape[0] > 1 else first
        positions = [first] + shrunk_position_means(total[1:], squares[1:], count[1:], rest)
        out[site] = FrozenScale(scale=rest, first_scale=first, positions=positions)
    return out


def shrunk_position_means(total: torch.Tensor, squares: torch.Tensor, count: torch.Tensor, overall: float) -> list[float]:
    """Per-position mean divisors shrunk towards their overall mean (empirical Bayes): each position's
    mean m_p moves to overall + w (m_p - overall), w = B / (B + W / n), where W is the pooled variance
    of the divisor within a position, n the sequences per position and B the variance of the true
    position means (the spread of the m_p less the W / n their noise explains, at least 0). A causal
    random-init network, whose divisor falls with position, keeps its per-position means (w near 1);
    a trained one whose divisor varies by token, not position, gets its overall mean (w near 0), not
    the noise of a few calibration sequences. total, squares, count: [pos] float64 sums over sequences."""
    if total.numel() < 2:
        return (total / count).tolist()
    means = total / count
    within = float(((squares / count - means.square()).clamp(min=0) * count / (count - 1).clamp(min=1)).mean())
    n = float(count.mean())
    between = max(float(means.var()) - within / n, 0.0)
    weight = between / (between + within / n) if between > 0 else 0.0
    return (overall + weight * (means - overall)).tolist()


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
