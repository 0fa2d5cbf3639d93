"""Node-level faithfulness of a planted circuit, by mean ablation through `model.hooks`.

A node is a head (its slice of ``attn.hook_z``), an MLP (``hook_mlp_out``) or one MLP unit (its
entry of ``mlp.hook_post``). Ablating a node replaces its output, at every position, by its mean over
a reference batch (`mean_ablate`).

    faithfulness = (m(circuit) - m(empty)) / (m(full) - m(empty))

where m(circuit) keeps only the circuit's nodes, m(empty) ablates every node and m(full) ablates
none. `m(circuit ablated)` (only the circuit's nodes ablated) shows the circuit is necessary.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

import torch

from mechscope.model.interventions import mean_ablate


def node_means(model, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mean of every head's z, every MLP's units and output over the batch: name -> [pos ...]."""
    names = [f"blocks.{L}.{site}" for site in ("attn.hook_z", "mlp.hook_post", "hook_mlp_out")
             for L in range(model.cfg.n_layers)]
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens.to(model.device), names=names)
    return {name: cache[name].mean(0) for name in names}


def ablation_hooks(means: dict[str, torch.Tensor], heads: Iterable[tuple[int, int]],
                   mlps: Iterable[int]) -> dict:
    """Forward hooks that mean-ablate the given (layer, head)s and MLP layers."""
    by_layer: dict[int, list[int]] = {}
    for layer, head in heads:
        by_layer.setdefault(layer, []).append(head)
    hooks = {f"blocks.{L}.attn.hook_z": mean_ablate(means, heads=sorted(hs)) for L, hs in by_layer.items()}
    hooks.update({f"blocks.{L}.hook_mlp_out": mean_ablate(means) for L in mlps})
    return hooks


@dataclasses.dataclass
class Faithfulness:
    """The task metric with no node, only the non-circuit nodes, all nodes, or only the circuit ablated."""

    full: float
    circuit_only: float
    empty: float
    circuit_ablated: float

    @property
    def faithfulness(self) -> float:
        return (self.circuit_only - self.empty) / (self.full - self.empty)

    @property
    def ablated_fraction(self) -> float:
        """Share of the task metric (above the empty model) that survives ablating the circuit."""
        return (self.circuit_ablated - self.empty) / (self.full - self.empty)

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self) | {"faithfulness": self.faithfulness,
                                           "ablated_fraction": self.ablated_fraction}


def node_faithfulness(model, metric: Callable[[], float], means: dict[str, torch.Tensor],
                      circuit_heads: Iterable[tuple[int, int]], circuit_mlps: Iterable[int] = ()) -> Faithfulness:
    """`metric()` runs the model on the task (higher = better) and returns a number; it is called
    under four sets of ablation hooks."""
    all_heads = {(L, H) for L in range(model.cfg.n_layers) for H in range(model.cfg.n_heads)}
    all_mlps = set(range(model.cfg.n_layers))
    heads, mlps = set(circuit_heads), set(circuit_mlps)

    def under(ablate_heads, ablate_mlps) -> float:
        with torch.no_grad(), model.hooks(fwd=ablation_hooks(means, ablate_heads, ablate_mlps)):
            return float(metric())

    return Faithfulness(full=under((), ()), circuit_only=under(all_heads - heads, all_mlps - mlps),
                        empty=under(all_heads, all_mlps), circuit_ablated=under(heads, mlps))


def unit_faithfulness(model, metric: Callable[[], float], means: dict[str, torch.Tensor],
                      circuit_units: dict[int, list[int]]) -> Faithfulness:
    """As `node_faithfulness`, with MLP units as the nodes: `circuit_units` maps layer -> units. Every
    head is outside the circuit; so is every unit not listed."""
    all_heads = {(L, H) for L in range(model.cfg.n_layers) for H in range(model.cfg.n_heads)}
    all_units = {L: list(range(model.cfg.d_mlp)) for L in range(model.cfg.n_layers)}
    outside = {L: [u for u in units if u not in circuit_units.get(L, [])] for L, units in all_units.items()}

    def under(heads, units: dict[int, list[int]]) -> float:
        hooks = ablation_hooks(means, heads, ())
        hooks.update({f"blocks.{L}.mlp.hook_post": mean_ablate(means[f"blocks.{L}.mlp.hook_post"], units=us)
                      for L, us in units.items() if us})
        with torch.no_grad(), model.hooks(fwd=hooks):
            return float(metric())

    return Faithfulness(full=under((), {}), circuit_only=under(all_heads, outside), empty=under(all_heads, all_units),
                        circuit_ablated=under((), circuit_units))
