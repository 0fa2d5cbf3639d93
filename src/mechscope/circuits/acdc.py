"""ACDC (Conmy et al. 2023) on the circuit engine.

1. Start from the full graph; visit destinations in reverse topological order (logits, then
   m{L-1}, a{L-1} (or its q/k/v inputs, last head first), ..., a0), and each destination's incoming edges from the latest source back.
2. For each edge, evaluate the current circuit without it. Its distance from the full model is
   KL(full || circuit) at the answer position (``objective="kl"``) or |m(circuit) - m(full)| for the
   task metric (``objective="metric"``), averaged over prompts.
3. Remove the edge for good if the distance grows by less than tau; its score is that growth.
4. A destination none of whose nodes sends anything on (every outgoing edge already removed) is
   dead: its incoming edges go without a forward pass (score 0), as ACDC's pruning would find.

One forward of n_prompts rows per live edge. Scores follow the package's sign convention (the
change a removal causes, larger = more important) so they feed the same curves and ROC.
"""

from __future__ import annotations

import dataclasses

import torch

from mechscope.circuits.attribution import EdgeScores
from mechscope.circuits.engine import CircuitSetup, answer_logits, mean_metric, prompt_mean
from mechscope.errors import InputError
from mechscope.progress import progress

OBJECTIVES = ("kl", "metric")


@dataclasses.dataclass
class AcdcResult:
    mask: torch.Tensor            # [n_src n_dst] bool: the circuit found
    scores: EdgeScores            # distance growth when each edge was tested
    tau: float
    objective: str
    n_forwards: int

    @property
    def n_edges(self) -> int:
        return int(self.mask.sum())

    def to_dict(self) -> dict:
        return {"tau": self.tau, "objective": self.objective, "n_forwards": self.n_forwards,
                "n_edges": self.n_edges, "edges": self.scores.graph.edges_of(self.mask),
                "scores": self.scores.to_dict()}

    def figure(self):
        from mechscope.circuits.figures import graph_figure

        return graph_figure(self.scores.graph, self.scores.scores, mask=self.mask,
                            title=f"ACDC circuit (tau={self.tau:g}, {self.objective}): {self.n_edges} edges")


def _distance(setup: CircuitSetup, mask: torch.Tensor, objective: str, full_metric: float) -> float:
    logits = answer_logits(setup, mask)[0]                                  # [n d_vocab]
    if objective == "kl":
        ref = setup.clean_answer_logits.log_softmax(-1)
        return float(prompt_mean(setup, (ref.exp() * (ref - logits.log_softmax(-1))).sum(-1)[None])[0])
    values = setup.metric(logits, torch.arange(setup.n_prompts))
    return abs(float(prompt_mean(setup, values[None])[0]) - full_metric)


def acdc(setup: CircuitSetup, tau: float, *, objective: str = "kl") -> AcdcResult:
    if not tau > 0:
        raise InputError(f"ACDC's threshold tau must be > 0 (a distance increase); got {tau!r}")
    if objective not in OBJECTIVES:
        raise InputError(f"unknown ACDC objective {objective!r}: use one of {', '.join(OBJECTIVES)}")
    g = setup.graph
    mask, scores = g.full(), torch.zeros(g.n_src, g.n_dst)
    full_metric = float(prompt_mean(setup, setup.metric(setup.clean_answer_logits, torch.arange(setup.n_prompts))[None])[0])
    current = _distance(setup, mask, objective, full_metric)
    forwards = 1
    order = [(s, d) for d in reversed(range(g.n_dst)) for s in reversed(range(g.n_src)) if g.allowed[s, d]]
    for s, d in progress(order, desc="ACDC", total=len(order)):
        owners = g.feeds[d]                          # the sources that read destination d
        if d != g.n_dst - 1 and not bool(mask[owners].any()):
            mask[s, d] = False                       # dead destination: nothing downstream reads it
            continue
        mask[s, d] = False
        trial = _distance(setup, mask, objective, full_metric)
        forwards += 1
        scores[s, d] = trial - current
        if trial - current < tau:
            current = trial
        else:
            mask[s, d] = True
    empty = float(mean_metric(setup, g.empty())[0])
    result = EdgeScores(graph=g, scores=scores, method=f"acdc-{objective}", ablation=setup.ablation,
                        metric=setup.metric.name, n_prompts=setup.n_prompts_total, clean_metric=full_metric,
                        ablated_metric=empty)
    return AcdcResult(mask=mask, scores=result, tau=float(tau), objective=objective, n_forwards=forwards)
