"""An attribution graph, its influence-based pruning, and its replacement / completeness scores.

Influence (Ameisen et al. 2025; circuit-tracer `graph.py`): take |A| with each row normalised to sum
1 (how a target's input divides among its sources), weight the logit nodes by their probabilities,
and sum the weights carried back along every path: influence = w (Â + Â^2 + ...). The graph is a
DAG, so the series ends after at most (longest path) terms.

prune(node_threshold=0.8, edge_threshold=0.98): keep the nodes that carry node_threshold of the
total influence (all tokens and logits always), then the edges carrying edge_threshold of the edge
influence of the pruned graph, then iteratively drop feature / error nodes left without outgoing
edges and features left without incoming ones.

scores(): replacement score = token influence / (token + error influence); completeness score = the
influence-weighted share of every node's input that comes from non-error nodes.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import torch
from torch import Tensor

from mechscope.errors import InputError
from mechscope.results import Result


def normalize_rows(adjacency: Tensor) -> Tensor:
    """|A| with rows scaled to sum 1 (all-zero rows stay zero)."""
    a = adjacency.abs()
    return a / a.sum(1, keepdim=True).clamp_min(1e-10)


def influence(normalized: Tensor, weights: Tensor, max_iter: int = 1000) -> Tensor:
    """weights [n] @ (Â + Â^2 + ...) for a nilpotent (acyclic) Â [n n] -> [n]."""
    term = weights @ normalized
    total = term.clone()
    for _ in range(max_iter):
        if not bool(term.any()):
            return total
        term = term @ normalized
        total += term
    raise InputError("influence did not converge: the adjacency matrix has a cycle; it must be a DAG")


def cumulative_threshold(scores: Tensor, fraction: float) -> Tensor:
    """The smallest score among the top scores that together carry `fraction` of the total."""
    ordered = scores.flatten().sort(descending=True).values
    cum = ordered.cumsum(0) / ordered.sum().clamp_min(1e-30)
    i = min(int(torch.searchsorted(cum, torch.tensor(fraction, dtype=cum.dtype))), len(ordered) - 1)
    return ordered[i]


class Pruned(NamedTuple):
    node_mask: Tensor        # [n_nodes] bool
    edge_mask: Tensor        # [n_nodes n_nodes] bool, rows = targets
    cumulative_influence: Tensor   # [n_nodes] share of total influence carried by nodes at least as influential


@dataclasses.dataclass
class AttributionGraph(Result):
    """Direct effects of one prompt. adjacency [n_nodes n_nodes]: rows targets, columns sources;
    nodes [features (active_features [n_feat 3] = layer, pos, latent), errors (layer * n_pos + pos),
    tokens (pos), logits (logit_tokens)]."""

    prompt: str
    input_tokens: list[int]
    token_strings: list[str]
    n_layers: int
    active_features: Tensor
    activation_values: Tensor
    logit_tokens: list[int]
    logit_token_strings: list[str]
    logit_probabilities: Tensor
    adjacency: Tensor

    _json_exclude = ("active_features", "activation_values", "adjacency", "logit_probabilities")

    # ---------------------------------------------------------------- layout
    @property
    def n_pos(self) -> int:
        return len(self.input_tokens)

    @property
    def n_features(self) -> int:
        return len(self.active_features)

    @property
    def error_slice(self) -> slice:
        return slice(self.n_features, self.n_features + self.n_layers * self.n_pos)

    @property
    def token_slice(self) -> slice:
        start = self.error_slice.stop
        return slice(start, start + self.n_pos)

    @property
    def logit_slice(self) -> slice:
        return slice(self.token_slice.stop, self.adjacency.shape[0])

    def logit_weights(self) -> Tensor:
        w = torch.zeros(self.adjacency.shape[0])
        w[self.logit_slice] = self.logit_probabilities
        return w

    def node_influence(self) -> Tensor:
        """[n_nodes] influence of each node on the logit targets (see the module docstring)."""
        return influence(normalize_rows(self.adjacency), self.logit_weights())

    # ---------------------------------------------------------------- pruning and scores
    def prune(self, node_threshold: float = 0.8, edge_threshold: float = 0.98) -> Pruned:
        if not (0 <= node_threshold <= 1 and 0 <= edge_threshold <= 1):
            raise InputError("node_threshold and edge_threshold are fractions in [0, 1]")
        w = self.logit_weights()
        node_inf = self.node_influence()
        keep = node_inf >= cumulative_threshold(node_inf, node_threshold)
        keep[self.token_slice.start:] = True
        pruned = self.adjacency.clone()
        pruned[~keep] = 0
        pruned[:, ~keep] = 0
        normalized = normalize_rows(pruned)
        edge_scores = normalized * (influence(normalized, w) + w)[:, None]
        edges = edge_scores >= cumulative_threshold(edge_scores, edge_threshold)
        edges &= pruned != 0
        fixed = self.token_slice.start
        while True:
            before = keep.clone()
            edges[~keep] = False
            edges[:, ~keep] = False
            keep[:fixed] &= edges[:, :fixed].any(0)                       # features and errors need an out-edge
            keep[:self.n_features] &= edges[:self.n_features].any(1)      # features need an in-edge
            if torch.equal(keep, before):
                break
        order = node_inf.argsort(descending=True)
        cum = torch.zeros_like(node_inf)
        cum[order] = node_inf[order].cumsum(0) / node_inf.sum().clamp_min(1e-30)
        return Pruned(keep, edges, cum)

    def scores(self) -> tuple[float, float]:
        """(replacement score, completeness score), circuit-tracer's definitions."""
        normalized = normalize_rows(self.adjacency)
        w = self.logit_weights()
        node_inf = influence(normalized, w)
        token_inf, error_inf = node_inf[self.token_slice].sum(), node_inf[self.error_slice].sum()
        replacement = token_inf / (token_inf + error_inf).clamp_min(1e-30)
        non_error = 1 - normalized[:, self.error_slice].sum(-1)
        out_inf = node_inf + w
        completeness = (non_error * out_inf).sum() / out_inf.sum()
        return float(replacement), float(completeness)

    # ---------------------------------------------------------------- naming
    def node_names(self) -> list[str]:
        """Readable names: 'L2/p5/f17', 'err L2/p5', 'tok p5 "cat"', 'logit "mat"'."""
        names = [f"L{lay}/p{p}/f{f}" for lay, p, f in self.active_features.tolist()]
        names += [f"err L{lay}/p{p}" for lay in range(self.n_layers) for p in range(self.n_pos)]
        names += [f"tok p{p} {s!r}" for p, s in enumerate(self.token_strings)]
        names += [f"logit {s!r}" for s in self.logit_token_strings]
        return names

    def to_dict(self):
        out = super().to_dict()
        replacement, completeness = self.scores()
        out.update(n_features=self.n_features, n_nodes=int(self.adjacency.shape[0]),
                   n_edges=int((self.adjacency != 0).sum()), replacement_score=replacement,
                   completeness_score=completeness, logit_probabilities=self.logit_probabilities.tolist())
        return out

    def to_neuronpedia(self, slug: str = "mechscope-graph", scan: str = "mechscope", **prune_kw) -> dict:
        from mechscope.graphs.export import neuronpedia_json

        return neuronpedia_json(self, slug, scan, **prune_kw)

    def figure(self):
        from mechscope.graphs.export import graph_figure

        return graph_figure(self)
