"""Edge scores: EAP, EAP-IG (over inputs or over activations) and exact edge patching.

One sign convention for every method: the score of an edge estimates

    m(every edge kept except this one) - m(every edge kept)

i.e. the change of the mean metric when that edge alone carries its ablated value. Selection and
curves rank edges by |score|.

1. EAP (Syed et al. 2023): one forward on the corrupt prompts (the ablated values), one forward and
   backward on the clean prompts; score(s -> d) = sum over prompts and positions of
   (a_s - c_s) . dm/dx_d / n, where x_d is what destination d reads (hook_attn_in ...).
2. EAP-IG, inputs (Hanna et al. 2024): the same with dm/dx_d averaged over `steps` runs whose input
   embedding is a + (j / steps)(c - a), j = 0 .. steps-1 (EAP-IG's schedule).
3. EAP-IG, activations: the same, but at step j every source's output is moved to a_s + (j/steps)(c_s - a_s)
   (a shift that keeps the gradient path through the source intact).
4. Exact (noising): the engine with each edge ablated alone (k edges per forward by tiling the prompts).
5. Exact denoising (patching): the corrupt run with each edge alone carrying its clean value.

On a model that is linear in its sources, the EAP scores of any cut sum to m(ablated) - m(clean).

What each estimates on a non-linear model: EAP is the first-order term of exact edge patching at
the clean point; EAP-IG averages the gradient over the path on which every source moves from its
ablated to its clean value at once, so an edge's score also reflects states in which the dominant
edges are half ablated. They agree on the large edges and differ on the small ones: on tiny-gpt2
IOI (64 prompts, 105 edges) EAP-IG has Pearson 0.97 but Spearman 0.70-0.73 with exact patching
(5-50 steps, inputs or activations), EAP Spearman 0.83; EAP-IG's top 10% of edges are the more
faithful (0.967 vs 0.952). `bench/bench_circuits.py --agreement` reproduces these numbers. With
per-head q/k/v destinations (`--agreement --qkv`, 479 edges, median |exact| 3e-4 of a 5.35 max)
EAP-IG's Spearman is 0.73-0.78 (5-50 steps), EAP's 0.84, and the top 10% of edges recover 0.970
(EAP-IG) and 0.987 (EAP): splitting the destinations does not bring EAP-IG to 0.9. The all-edge
ranking is mostly noise in the oracle itself (exact patching on even vs odd prompts: Spearman 0.46
merged, 0.18 split); on the 13 / 16 edges it resolves (> 3 standard errors) EAP-IG ranks at
0.995 / 0.991 and EAP at 0.97 / 0.997, and over all edges EAP-IG ranks like exact denoising (0.92).
auto-circuit's mask-gradient scores are these EAP scores negated (its loss is -metric).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from mechscope import distributed as ddp
from mechscope.circuits.engine import CircuitSetup, evaluate, mean_metric, prompt_mean
from mechscope.circuits.graph import Graph
from mechscope.circuits.sources import (
    destination_hooks,
    group_layer,
    head_outputs,
    is_heads,
    source_hook_names,
)
from mechscope.errors import InputError
from mechscope.patching import forward_to_answer
from mechscope.progress import progress
from mechscope.results import Result

METHODS = ("eap", "eap-ig", "eap-ig-activations", "exact", "exact-denoising")


@dataclasses.dataclass
class EdgeScores(Result):
    """scores: [n_src n_dst] (zero off the graph's edges); method and ablation that made them."""

    _json_exclude = ("scores", "graph")

    graph: Graph
    scores: torch.Tensor
    method: str
    ablation: str
    metric: str
    n_prompts: int
    clean_metric: float
    ablated_metric: float

    @property
    def vector(self) -> torch.Tensor:
        """[n_edges] in `graph.edge_index` order."""
        return self.graph.to_edge_vector(self.scores)

    def top(self, k: int = 10) -> list[tuple[str, float]]:
        names, v = self.graph.edge_names(), self.vector
        order = v.abs().argsort(descending=True)[:k]
        return [(names[i], float(v[i])) for i in order]

    def to_dict(self) -> dict:
        out = super().to_dict()
        out["edges"] = dict(zip(self.graph.edge_names(), self.vector.tolist(), strict=True))
        out["graph"] = dataclasses.asdict(self.graph)
        return out

    def merged(self) -> EdgeScores:
        """On a split (q/k/v) graph: the scores summed onto one destination per attention layer."""
        if not self.graph.qkv:
            return self
        return dataclasses.replace(self, graph=self.graph.merged, scores=self.graph.merge(self.scores))

    def figure(self):
        from mechscope.circuits.figures import graph_figure

        return graph_figure(self.graph, self.scores, title=f"{self.method} edge scores ({self.ablation})")


def _gradients(setup: CircuitSetup, fwd: dict | None = None) -> torch.Tensor:
    """dm/dx_d on the clean prompts: [n pos n_dst d_model], summed (not averaged) over prompts.

    A plain clean pass (no `fwd`) also records the clean sources and logits if the setup lacks them.
    """
    names = [name for name, _ in destination_hooks(setup.graph)]
    record = fwd is None and setup._clean_sources is None
    sources = source_hook_names(setup.graph.n_layers) if record else []
    with torch.enable_grad(), setup.model.hooks(fwd=fwd or {}):
        logits, acts = forward_to_answer(setup.model, setup.clean_tokens, names + sources, setup.answer_pos,
                                         grad=True)
        if record:
            setup.remember_clean({n: acts[n] for n in sources}, logits)
        values = setup.metric(logits.float(), torch.arange(setup.n_prompts))
        live = {n: acts[n] for n in names}
        grads = torch.autograd.grad(values.sum(), [live[n] for n in names], allow_unused=True)
    per_hook = [torch.zeros_like(live[n]) if g is None else g for n, g in zip(names, grads, strict=True)]
    return torch.cat([g if g.ndim == 4 else g.unsqueeze(2) for g in per_hook], 2)   # split inputs: [n pos heads d]


def _scores_from(setup: CircuitSetup, grads: torch.Tensor) -> torch.Tensor:
    """sum over prompts and positions of (a_s - c_s) . dm/dx_d, per edge: [n_src n_dst] (mean over prompts).

    A layer's heads are differenced as z and projected through W_O one layer at a time, so the
    per-head outputs of all layers never exist at once.
    """
    g = setup.graph
    names = source_hook_names(g.n_layers)
    n, pos, n_dst, d_model = grads.shape
    flat = grads.float().permute(0, 1, 3, 2).reshape(n * pos * d_model, n_dst)     # one copy, one matmul per group
    rows = []
    for name, ablated, clean in zip(names, setup.ablated, setup.clean_sources, strict=True):
        diff = (ablated - clean).float()                                           # [n pos g width]
        if is_heads(name):
            diff = head_outputs(diff, setup.w_o[group_layer(name)].float())         # [n pos g d_model]
        rows.append(diff.permute(2, 0, 1, 3).reshape(diff.shape[2], -1) @ flat)     # [g n_dst]
    scores = torch.cat(rows)
    return ddp.all_reduce_sum(scores) / setup.n_prompts_total * g.allowed.to(scores.device)


def eap(setup: CircuitSetup) -> torch.Tensor:
    return _scores_from(setup, _gradients(setup))


def _check_steps(steps: int) -> None:
    if not isinstance(steps, int) or steps < 1:
        raise InputError(f"steps must be a positive integer (EAP-IG's default is 5); got {steps!r}")


def eap_ig_inputs(setup: CircuitSetup, steps: int = 5) -> torch.Tensor:
    _check_steps(steps)
    clean_in, ablated_in = setup.clean_sources[0][:, :, 0], setup.ablated[0][:, :, 0]
    total = 0
    for j in progress(range(steps), desc="EAP-IG steps", total=steps):
        point = ablated_in + (j / steps) * (clean_in - ablated_in)
        fwd = {"blocks.0.hook_resid_pre": lambda x, hook, p=point: x + (p - x).detach()}
        total = total + _gradients(setup, fwd)
    return _scores_from(setup, total / steps)


def eap_ig_activations(setup: CircuitSetup, steps: int = 5) -> torch.Tensor:
    _check_steps(steps)
    names = source_hook_names(setup.graph.n_layers)
    total = 0
    for j in progress(range(steps), desc="EAP-IG steps", total=steps):
        fwd = {}
        for name, ablated, clean in zip(names, setup.ablated, setup.clean_sources, strict=True):
            def shift(x, hook, t=ablated + (j / steps) * (clean - ablated)):
                goal = t if is_heads(hook.name) else t[:, :, 0]
                return x + (goal.expand_as(x) - x).detach()
            fwd[name] = shift
        total = total + _gradients(setup, fwd)
    return _scores_from(setup, total / steps)


def single_edge_effects(setup: CircuitSetup, *, denoising: bool = False) -> torch.Tensor:
    """Per-prompt exact single-edge effects [n_edges n] in `graph.edge_index` order (this rank's prompts).

    Noising (default): m(G minus e) - m(G), the clean run with edge e alone carrying its ablated value.
    Denoising (patching only): m(corrupt) - m(corrupt with e clean), the corrupt run with edge e alone
    carrying the clean value (`CircuitSetup.swapped`), so that the same sign convention holds. The two
    agree on a model that is linear in its sources and part ways where edges interact (redundant
    paths, AND-like ones).
    """
    if denoising:
        return -single_edge_effects(setup.swapped())
    g = setup.graph
    edges = g.edge_index()
    masks = g.full()[None].repeat(len(edges), 1, 1)
    masks[torch.arange(len(edges)), edges[:, 0], edges[:, 1]] = False
    return evaluate(setup, masks) - evaluate(setup, g.full())                  # [n_edges n] - [1 n]


def exact(setup: CircuitSetup) -> torch.Tensor:
    """m(G minus e) - m(G) for every edge e, measured with the engine (exact edge patching, noising)."""
    return setup.graph.from_edge_vector(prompt_mean(setup, single_edge_effects(setup)).cpu(), fill=0.0)


def exact_denoising(setup: CircuitSetup) -> torch.Tensor:
    """m(corrupt) - m(corrupt with e clean) for every edge e (patching only)."""
    effects = single_edge_effects(setup, denoising=True)
    return setup.graph.from_edge_vector(prompt_mean(setup, effects).cpu(), fill=0.0)


_METHODS: dict[str, Callable] = {"eap": eap, "eap-ig": eap_ig_inputs, "eap-ig-activations": eap_ig_activations,
                                 "exact": exact, "exact-denoising": exact_denoising}


def attribute(setup: CircuitSetup, method: str = "eap-ig", *, steps: int = 5) -> EdgeScores:
    """Score every edge of the graph with `method` (one of METHODS)."""
    if method not in _METHODS:
        raise InputError(f"unknown method {method!r}: use one of {', '.join(METHODS)} (ACDC: circuits.acdc)")
    fn = _METHODS[method]
    scores = fn(setup, steps=steps) if method.startswith("eap-ig") else fn(setup)
    ends = mean_metric(setup, torch.stack([setup.graph.full(), setup.graph.empty()]))
    return EdgeScores(graph=setup.graph, scores=scores.detach().cpu(), method=method, ablation=setup.ablation,
                      metric=setup.metric.name, n_prompts=setup.n_prompts_total, clean_metric=float(ends[0]),
                      ablated_metric=float(ends[1]))


__all__ = ["METHODS", "EdgeScores", "attribute", "eap", "eap_ig_activations", "eap_ig_inputs", "exact", "exact_denoising",
           "single_edge_effects"]
