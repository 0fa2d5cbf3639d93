"""From edge scores to a circuit mask: top-n, greedy from the logits, or a threshold on |score|.

    top_n(graph, scores, n)        the n edges with the largest |score|
    greedy(graph, scores, n)       grow from the logits: repeatedly add the largest-|score| edge whose
                                   destination is already in the circuit (EAP-IG's greedy), so
                                   every kept edge has a path to the logits
    threshold(graph, scores, t)    every edge with |score| >= t

scores: [n_src n_dst] (an EdgeScores' .scores); masks: [n_src n_dst] bool.
"""

from __future__ import annotations

import torch

from mechscope.circuits.graph import Graph
from mechscope.errors import InputError

SELECTIONS = ("top-n", "greedy", "threshold")


def _check_n(graph: Graph, n: int) -> int:
    if n < 0:
        raise InputError(f"a circuit cannot have {n} edges; give n >= 0")
    return min(int(n), graph.n_edges)


def top_n(graph: Graph, scores: torch.Tensor, n: int) -> torch.Tensor:
    n = _check_n(graph, n)
    vec = graph.to_edge_vector(scores.float()).abs()
    keep = torch.zeros_like(vec, dtype=torch.bool)
    keep[vec.argsort(descending=True, stable=True)[:n]] = True
    return graph.from_edge_vector(keep, fill=False)


def threshold(graph: Graph, scores: torch.Tensor, t: float) -> torch.Tensor:
    return (scores.float().abs() >= t) & graph.allowed


def greedy(graph: Graph, scores: torch.Tensor, n: int) -> torch.Tensor:
    n = _check_n(graph, n)
    allowed, mag = graph.allowed, scores.float().abs()
    reached = torch.zeros(graph.n_dst, dtype=torch.bool)
    reached[-1] = True
    mask = graph.empty()
    for _ in range(n):
        candidates = allowed & ~mask & reached[None, :]
        if not bool(candidates.any()):
            break
        flat = torch.where(candidates, mag, torch.full_like(mag, -1.0)).flatten().argmax()
        s, d = divmod(int(flat), graph.n_dst)
        mask[s, d] = True
        reached |= graph.feeds[:, s]                    # the source's own inputs can now be added
    return mask


def select(graph: Graph, scores: torch.Tensor, how: str, amount: float) -> torch.Tensor:
    """`how` in SELECTIONS; `amount`: the edge count (top-n, greedy) or the |score| threshold."""
    if how == "top-n":
        return top_n(graph, scores, int(amount))
    if how == "greedy":
        return greedy(graph, scores, int(amount))
    if how == "threshold":
        return threshold(graph, scores, float(amount))
    raise InputError(f"unknown selection {how!r}: use one of {', '.join(SELECTIONS)}")
