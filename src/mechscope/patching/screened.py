"""Per-head patching effects that scale with depth: attribution screen, exact confirmation (AtP*-style).

Exact patching of hook_z at every head costs one forward per head and prompt, each from the head's
layer onward: about n_layers^2 / 2 x n_heads block-passes per prompt, quadratic in depth. With
`exact_top` set, every head is first estimated by attribution patching (attribution.py: one forward
on each run and one activation-only backward, linear in depth), and only the `exact_top` heads with
the largest |estimate| are patched exactly (Kramár et al. 2024 screen with attribution patching and
confirm with exact patches in the same way). The returned grid holds exact values for the confirmed
heads and the first-order estimates for the rest; `exact` says which is which.

Usage::

    screen = head_effects(model, task, direction="noise", exact_top=40)
    screen.result.top(10)            # ranked on exact values where confirmed
    screen.result.values[screen.exact]
"""

from __future__ import annotations

import dataclasses

import torch

from mechscope.patching.activation import PatchingConfig, activation_patching, hook_name
from mechscope.patching.attribution import attribution_patching
from mechscope.patching.partial_forward import Site
from mechscope.patching.results import PatchingResult


@dataclasses.dataclass
class HeadScreen:
    """result: per-head effects [n_layers n_heads]; exact: [n_layers n_heads] bool, True where the
    value comes from an exact patch (everywhere when no screen was used)."""

    result: PatchingResult
    exact: torch.Tensor

    @property
    def n_exact(self) -> int:
        return int(self.exact.sum())


def head_effects(model, task, direction: str = "denoise", exact_top: int | None = None) -> HeadScreen:
    """Patching effect of every head's hook_z, exact for all heads (exact_top None, or at least the
    number of heads) or for the exact_top heads an attribution screen ranks highest."""
    config = PatchingConfig(direction=direction)
    n_heads = model.cfg.n_layers * model.cfg.n_heads
    if exact_top is None or exact_top >= n_heads:
        grid = activation_patching(model, task, "z", config)
        return HeadScreen(grid, torch.ones_like(grid.values, dtype=torch.bool))
    estimate = attribution_patching(model, task, sites=("z",), direction=direction).values["z"].float()
    order = estimate.reshape(-1).abs().argsort(descending=True)[:exact_top]
    chosen = [tuple(int(i) for i in torch.unravel_index(o, estimate.shape)) for o in order]
    sites = [Site(hook_name("z", layer), head=head) for layer, head in chosen]
    confirmed = activation_patching(model, task, "z", config, sites=sites)
    values, patched = estimate.clone(), torch.full_like(estimate, float("nan"))
    exact = torch.zeros_like(estimate, dtype=torch.bool)
    for (layer, head), value, metric in zip(chosen, confirmed.values.tolist(), confirmed.patched_metric.tolist(),
                                            strict=True):
        values[layer, head], patched[layer, head], exact[layer, head] = value, metric, True
    result = dataclasses.replace(confirmed, axes=("layer", "head"), values=values, patched_metric=patched,
                                 sites=[], site="z (attribution screen, exact top)")
    return HeadScreen(result, exact)
