"""Graph files in EAP-IG's JSON layout (hannamw/EAP-IG ``Graph.to_json`` / ``from_json``).

    {"cfg": {"n_layers", "n_heads", "n_key_value_heads", "parallel_attn_mlp", "d_model"},
     "nodes": {"input": {"in_graph": true}, "a0.h1": {"in_graph": false, "score": ...}, ...},
     "edges": {"a0.h1->a1.h0<k>": {"score": 0.12, "in_graph": true}, ...}}

EAP-IG's attention destinations are per head and per q/k/v input, as are those of a split graph
(``Graph(qkv=True)``), whose edges are written and read one for one. A merged graph's export
writes every split edge of a merged edge with the merged edge's in_graph flag and 1 / (3 n_heads)
of its score; import onto a merged graph (``qkv=False``) merges split edges back (scores summed,
in_graph if any split edge is in), so a round trip returns the same scores and circuit, and a
file written by EAP-IG gives merged scores that are the sums of its split scores.

Grouped-query models: EAP-IG (TransformerLens with ``ungroup_grouped_query_attention``) has a
k and a v input per query head; a split graph has one per kv head, which is the sum of its
group's (the kv head's input gradient is the sum of the copies'). Export writes a kv edge onto
each query head of its group with 1 / group of its score; import sums a group's edges. EAP-IG's
files do not record n_key_value_heads: pass the model's to `from_eapig(n_kv_heads=)`. Files written
here load with EAP-IG's ``Graph.from_json`` (bench/bench_circuits.py --vs-eap-ig checks it).
"""

from __future__ import annotations

import torch

from mechscope.circuits.graph import SPLIT_DST, Graph
from mechscope.errors import InputError


def to_eapig(graph: Graph, scores: torch.Tensor, mask: torch.Tensor | None = None, *, d_model: int = 0) -> dict:
    """scores [n_src n_dst], mask [n_src n_dst] bool (None: every edge in) -> EAP-IG's JSON dict."""
    mask = graph.full() if mask is None else mask & graph.allowed
    group = graph.n_heads // graph.kv_heads
    edges: dict[str, dict] = {}
    src_names, dst_names = graph.sources, graph.destinations
    for s, d in graph.edge_index().tolist():
        name, value, keep = dst_names[d], float(scores[s, d]), bool(mask[s, d])
        split = SPLIT_DST.match(name)
        if not name.startswith("a"):
            targets = [name]
        elif split is None:                     # merged: every head's q, k and v input
            targets = [f"{name}.h{h}<{x}>" for h in range(graph.n_heads) for x in "qkv"]
        elif split.group(3) == "q" or group == 1:
            targets = [name]
        else:                                   # a kv head: each query head of its group
            layer, g, x = split.groups()
            targets = [f"a{layer}.h{h}<{x}>" for h in range(int(g) * group, (int(g) + 1) * group)]
        for target in targets:
            edges[f"{src_names[s]}->{target}"] = {"score": value / len(targets), "in_graph": keep}
    used = set(graph.nodes_of(mask)) | {"logits"}
    nodes = {n: {"in_graph": n in used} for n in graph.sources + ["logits"]}   # as EAP-IG's to_json writes
    cfg = {"n_layers": graph.n_layers, "n_heads": graph.n_heads, "n_key_value_heads": graph.n_kv_heads or None,
           "parallel_attn_mlp": graph.parallel_attn_mlp, "d_model": d_model}
    return {"cfg": cfg, "nodes": nodes, "edges": edges}


def from_eapig(data: dict, *, qkv: bool = False, n_kv_heads: int | None = None
               ) -> tuple[Graph, torch.Tensor, torch.Tensor]:
    """EAP-IG's JSON dict -> (graph, scores [n_src n_dst], mask [n_src n_dst] bool); `qkv`: onto a split
    graph (per head and q/k/v input) rather than a merged one; `n_kv_heads`: the model's key / value
    heads when the file does not say (EAP-IG's cfg has no n_key_value_heads; ours does)."""
    try:
        cfg, edges = data["cfg"], data["edges"]
        n_heads = int(cfg["n_heads"])
        n_kv = int(n_kv_heads or cfg.get("n_key_value_heads") or n_heads)
        graph = Graph(int(cfg["n_layers"]), n_heads, bool(cfg.get("parallel_attn_mlp", False)), qkv=qkv,
                      n_kv_heads=n_kv if n_kv != n_heads else 0)
    except (KeyError, TypeError) as err:
        raise InputError(f"not an EAP-IG graph file: missing {err}; expected keys cfg (n_layers, n_heads) "
                         "and edges") from None
    scores = torch.zeros(graph.n_src, graph.n_dst, dtype=torch.float64)
    mask = graph.empty()
    src_at = {n: i for i, n in enumerate(graph.sources)}
    dst_at = {n: i for i, n in enumerate(graph.destinations)}
    group = graph.n_heads // graph.kv_heads
    for name, info in edges.items():
        src, _, dst = name.partition("->")
        split = SPLIT_DST.match(dst)
        if qkv and split and split.group(3) != "q" and group > 1:      # a query head's k / v: its kv head's
            name = f"{src}->a{split.group(1)}.h{int(split.group(2)) // group}<{split.group(3)}>"
        s, d = graph.parse_edge(name, src_at, dst_at)
        if isinstance(info, dict):
            score, keep = info.get("score"), info.get("in_graph", False)
        else:
            score, keep = None, bool(info)
        if score is not None:      # a merged name on a split graph shares its score among its split edges
            scores[s, d] += float(score) / (d.stop - d.start if isinstance(d, slice) else 1)
        mask[s, d] |= bool(keep)
    return graph, scores.float(), mask
