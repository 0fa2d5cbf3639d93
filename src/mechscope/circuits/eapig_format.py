"""Graph files in EAP-IG's JSON layout (hannamw/EAP-IG ``Graph.to_json`` / ``from_json``).

    {"cfg": {"n_layers", "n_heads", "parallel_attn_mlp", "d_model"},
     "nodes": {"input": true, "a0.h1": false, ...},                   (or {"in_graph": ..., "score": ...})
     "edges": {"a0.h1->a1.h0<k>": {"score": 0.12, "in_graph": true}, ...}}

EAP-IG's attention destinations are per head and per q/k/v input; ours are per layer. Export
writes every split edge of a merged edge with the merged edge's in_graph flag and 1 / (3 n_heads)
of its score; import merges split edges back (scores summed, in_graph if any split edge is in),
so a round trip returns the same scores and circuit. A file written by EAP-IG imports the same
way: the merged score is the sum of its split scores, the merged edge is in the circuit if any
split edge is.
"""

from __future__ import annotations

import torch

from mechscope.circuits.graph import Graph
from mechscope.errors import InputError


def to_eapig(graph: Graph, scores: torch.Tensor, mask: torch.Tensor | None = None, *, d_model: int = 0) -> dict:
    """scores [n_src n_dst], mask [n_src n_dst] bool (None: every edge in) -> EAP-IG's JSON dict."""
    mask = graph.allowed if mask is None else mask & graph.allowed
    share = 1.0 / (3 * graph.n_heads)
    edges: dict[str, dict] = {}
    src_names, dst_names = graph.sources, graph.destinations
    for s, d in graph.edge_index().tolist():
        name, value, keep = dst_names[d], float(scores[s, d]), bool(mask[s, d])
        if name.startswith("a"):
            for h in range(graph.n_heads):
                for qkv in "qkv":
                    edges[f"{src_names[s]}->{name}.h{h}<{qkv}>"] = {"score": value * share, "in_graph": keep}
        else:
            edges[f"{src_names[s]}->{name}"] = {"score": value, "in_graph": keep}
    used = set(graph.nodes_of(mask)) | {"logits"}
    nodes = {n: n in used for n in graph.sources + ["logits"]}
    cfg = {"n_layers": graph.n_layers, "n_heads": graph.n_heads,
           "parallel_attn_mlp": graph.parallel_attn_mlp, "d_model": d_model}
    return {"cfg": cfg, "nodes": nodes, "edges": edges}


def from_eapig(data: dict) -> tuple[Graph, torch.Tensor, torch.Tensor]:
    """EAP-IG's JSON dict -> (graph, scores [n_src n_dst], mask [n_src n_dst] bool)."""
    try:
        cfg, edges = data["cfg"], data["edges"]
        graph = Graph(int(cfg["n_layers"]), int(cfg["n_heads"]), bool(cfg.get("parallel_attn_mlp", False)))
    except (KeyError, TypeError) as err:
        raise InputError(f"not an EAP-IG graph file: missing {err}; expected keys cfg (n_layers, n_heads) "
                         "and edges") from None
    scores = torch.zeros(graph.n_src, graph.n_dst, dtype=torch.float64)
    mask = graph.empty()
    src_at = {n: i for i, n in enumerate(graph.sources)}
    dst_at = {n: i for i, n in enumerate(graph.destinations)}
    for name, info in edges.items():
        s, d = graph.parse_edge(name, src_at, dst_at)
        if isinstance(info, dict):
            score, keep = info.get("score"), info.get("in_graph", False)
        else:
            score, keep = None, bool(info)
        if score is not None:
            scores[s, d] += float(score)
        mask[s, d] |= bool(keep)
    return graph, scores.float(), mask
