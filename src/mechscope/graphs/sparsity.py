"""How sparse are feature-to-feature interactions in an attribution graph (claim C21).

out-degree of a feature: how many *feature* targets (later layers, any position) take at least
`share` of their input from it, input share = |A[t, s]| / sum_s' |A[t, s']| over all sources of t
(features, errors and tokens). A feature that shapes many downstream features has a high out-degree.

edge share for a fraction q of influence: the fewest edges, taken by edge influence (circuit-tracer's
|normalised A| weighted by the target's influence on the logits), that carry q of the total edge
influence, as a share of all non-zero edges. Sparse interactions need few edges for 80%.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from mechscope.graphs.graph import AttributionGraph, influence, normalize_rows


@dataclasses.dataclass
class InteractionSparsity:
    out_degree: Tensor           # [n_features] feature targets with input share >= share
    edge_share_80: float         # share of non-zero edges needed for 80% of the edge influence
    edge_share_98: float
    n_edges: int
    n_nodes: int
    share: float

    @property
    def edges_80_per_node(self) -> float:
        """Edges needed for 80% of the influence per node: about 1 when each node's influence runs
        through one edge (sparse), many when it is spread (dense); unlike the share, it does not
        shrink as graphs grow."""
        return self.edge_share_80 * self.n_edges / max(self.n_nodes, 1)

    def to_dict(self) -> dict:
        deg = self.out_degree.float()
        return {"median_out_degree": float(deg.median()) if len(deg) else float("nan"),
                "mean_out_degree": float(deg.mean()) if len(deg) else float("nan"),
                "edge_share_80": self.edge_share_80, "edge_share_98": self.edge_share_98,
                "edges_80_per_node": self.edges_80_per_node,
                "n_edges": self.n_edges, "input_share_threshold": self.share}


def out_degree(graph: AttributionGraph, share: float = 0.01) -> Tensor:
    """[n_features] number of feature targets taking >= `share` of their input from each feature."""
    n = graph.n_features
    shares = normalize_rows(graph.adjacency)[:n, :n]        # feature targets x feature sources
    return (shares >= share).sum(0)


def edges_for_influence(graph: AttributionGraph, fraction: float) -> float:
    """Share of the non-zero edges that carry `fraction` of the total edge influence."""
    normalized = normalize_rows(graph.adjacency)
    w = graph.logit_weights()
    scores = (normalized * (influence(normalized, w) + w)[:, None]).flatten()
    scores = scores[graph.adjacency.flatten() != 0]
    if scores.numel() == 0 or float(scores.sum()) <= 0:
        return float("nan")
    ordered = scores.sort(descending=True).values
    cum = ordered.cumsum(0) / ordered.sum()
    needed = int(torch.searchsorted(cum, torch.tensor(fraction, dtype=cum.dtype))) + 1
    return min(needed, len(ordered)) / len(ordered)


def interaction_sparsity(graph: AttributionGraph, share: float = 0.01) -> InteractionSparsity:
    return InteractionSparsity(out_degree(graph, share), edges_for_influence(graph, 0.8),
                               edges_for_influence(graph, 0.98), int((graph.adjacency != 0).sum()),
                               int(graph.adjacency.shape[0]), share)
