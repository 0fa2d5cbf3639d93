"""Head ablations for circuit checks: mean-ablate every head outside a set, or a few heads.

Mean ablation replaces a head's output (hook_z) by its mean over a reference set of prompts (per
position; the IOI paper uses the ABC set), which removes the head's prompt-specific information
while keeping its average contribution. Faithfulness of a circuit = metric with every other head
mean-ablated / metric of the full model (Wang et al. 2022 report 87% for their IOI circuit).
"""

from __future__ import annotations

import dataclasses

import torch

from mechscope.model.interventions import mean_ablate
from mechscope.results import Result
from mechscope.tasks.answer import answer_logits, answer_logits_and_cache


def head_means(model, reference_tokens: torch.Tensor) -> dict[int, torch.Tensor]:
    """Mean hook_z per layer over the reference prompts: {layer: [pos head d_head]}."""
    names = [f"blocks.{layer}.attn.hook_z" for layer in range(model.cfg.n_layers)]
    _, cache = answer_logits_and_cache(model, reference_tokens, -1, names)
    return {layer: cache[names[layer]].mean(0) for layer in range(model.cfg.n_layers)}


def ablated_metric(model, task, ablate: set[tuple[int, int]], means: dict[int, torch.Tensor],
                   tokens: torch.Tensor | None = None, clean_logits: torch.Tensor | None = None) -> torch.Tensor:
    """Per-prompt metric [n] on `tokens` (default: clean prompts) with the heads in `ablate`
    replaced by their means. clean_logits: [n d_vocab] the clean run's answer logits (the "kl"
    metric's reference), computed here when not given."""
    tokens = task.clean_tokens if tokens is None else tokens
    by_layer: dict[int, list[int]] = {}
    for layer, h in ablate:
        by_layer.setdefault(layer, []).append(h)
    fwd = {f"blocks.{layer}.attn.hook_z": mean_ablate(means[layer], heads=sorted(hs)) for layer, hs in by_layer.items()}
    if clean_logits is None:
        clean_logits = answer_logits(model, task.clean_tokens, task.answer_pos)
    logits = answer_logits(model, tokens, task.answer_pos, fwd=fwd)
    return task.score(logits, reference_logits=clean_logits).cpu()


@dataclasses.dataclass
class Faithfulness(Result):
    """metric of the circuit alone (all other heads mean-ablated) relative to the full model."""

    heads: list[tuple[int, int]]
    full_metric: float
    circuit_metric: float
    ablated_all_metric: float
    faithfulness: float

    def figure(self):
        import plotly.graph_objects as go

        fig = go.Figure(go.Bar(x=["full model", "circuit only", "all heads ablated"],
                               y=[self.full_metric, self.circuit_metric, self.ablated_all_metric]))
        fig.update_layout(title=f"circuit of {len(self.heads)} heads: faithfulness {self.faithfulness:.2f}",
                          yaxis_title="metric")
        return fig


def circuit_faithfulness(model, task, heads: list[tuple[int, int]],
                         reference_tokens: torch.Tensor | None = None) -> Faithfulness:
    """Faithfulness of `heads`: mean-ablate all others (means over `reference_tokens`, default the
    task's corrupt prompts)."""
    reference = task.corrupt_tokens if reference_tokens is None else reference_tokens
    means = head_means(model, reference)
    everything = {(layer, h) for layer in range(model.cfg.n_layers) for h in range(model.cfg.n_heads)}
    keep = {tuple(h) for h in heads}
    clean_logits = answer_logits(model, task.clean_tokens, task.answer_pos)
    full = task.score(clean_logits, reference_logits=clean_logits).mean().item()
    circuit = ablated_metric(model, task, everything - keep, means, clean_logits=clean_logits).mean().item()
    none = ablated_metric(model, task, everything, means, clean_logits=clean_logits).mean().item()
    faith = circuit / full if full != 0 else float("nan")
    return Faithfulness(heads=sorted(keep), full_metric=full, circuit_metric=circuit, ablated_all_metric=none,
                        faithfulness=faith)
