"""Attribution graphs out: Neuronpedia's graph JSON, a plotly figure, and a self-contained HTML page.

The JSON follows what circuit-tracer's `create_graph_files` writes and Neuronpedia's graph viewer
reads: {"metadata", "qParams", "nodes", "links"}, node ids "{layer}_{latent}_{pos}" for features,
"{layer}_-1_{pos}" for errors, "E_{token}_{pos}" for tokens and "{n_layers+1}_{token}_{pos}" for
logits, links {"source", "target", "weight"} over the pruned graph.
"""

from __future__ import annotations


def _cantor(x: int, y: int) -> int:
    return (x + y) * (x + y + 1) // 2 + y


def _node_dicts(graph, keep, cumulative) -> dict[int, dict]:
    nodes: dict[int, dict] = {}
    n_feat, n_pos, n_layers = graph.n_features, graph.n_pos, graph.n_layers
    for i in keep.nonzero().squeeze(-1).tolist():
        base = {"token_prob": 0.0, "is_target_logit": False, "run_idx": 0, "reverse_ctx_idx": 0, "clerp": "",
                "influence": float(cumulative[i]), "activation": None}
        if i < n_feat:
            layer, pos, f = graph.active_features[i].tolist()
            node = {"node_id": f"{layer}_{f}_{pos}", "feature": _cantor(layer, f), "layer": str(layer), "ctx_idx": pos,
                    "feature_type": "cross layer transcoder", "jsNodeId": f"{layer}_{f}-0",
                    "activation": float(graph.activation_values[i])}
        elif i < graph.token_slice.start:
            layer, pos = divmod(i - n_feat, n_pos)
            node = {"node_id": f"{layer}_-1_{pos}", "feature": -1, "layer": str(layer), "ctx_idx": pos,
                    "feature_type": "mlp reconstruction error", "jsNodeId": f"{layer}_-1-{pos}"}
        elif i < graph.logit_slice.start:
            pos = i - graph.token_slice.start
            tok = graph.input_tokens[pos]
            node = {"node_id": f"E_{tok}_{pos}", "feature": pos, "layer": "E", "ctx_idx": pos,
                    "feature_type": "embedding", "jsNodeId": f"E_{tok}-{pos}"}
        else:
            j = i - graph.logit_slice.start
            tok, p = graph.logit_tokens[j], float(graph.logit_probabilities[j])
            node = {"node_id": f"{n_layers + 1}_{tok}_{n_pos - 1}", "feature": tok, "layer": str(n_layers + 1),
                    "ctx_idx": n_pos - 1, "feature_type": "logit", "jsNodeId": f"L_{tok}-{n_pos - 1}",
                    "token_prob": p, "is_target_logit": j == 0,
                    "clerp": f'Output "{graph.logit_token_strings[j]}" (p={p:.3f})'}
        nodes[i] = {**base, **node}
    return nodes


def neuronpedia_json(graph, slug: str = "mechscope-graph", scan: str = "mechscope",
                     node_threshold: float = 0.8, edge_threshold: float = 0.98) -> dict:
    """The pruned graph as the JSON Neuronpedia's graph viewer (and circuit-tracer's server) reads."""
    pruned = graph.prune(node_threshold, edge_threshold)
    nodes = _node_dicts(graph, pruned.node_mask, pruned.cumulative_influence)
    targets, sources = pruned.edge_mask.nonzero(as_tuple=True)
    links = [{"source": nodes[s]["node_id"], "target": nodes[t]["node_id"], "weight": float(graph.adjacency[t, s])}
             for t, s in zip(targets.tolist(), sources.tolist(), strict=True) if s in nodes and t in nodes]
    linked = {x for link in links for x in (link["source"], link["target"])}
    used = [n for n in nodes.values() if n["node_id"] in linked or n["feature_type"] in ("embedding", "logit")]
    return {
        "metadata": {"slug": slug, "scan": scan, "transcoder_list": [], "prompt_tokens": graph.token_strings,
                     "prompt": graph.prompt, "node_threshold": node_threshold, "schema_version": 1},
        "qParams": {"pinnedIds": [], "supernodes": [], "linkType": "both", "clickedId": "", "sg_pos": ""},
        "nodes": used, "links": links,
    }


EDGE_WIDTH_BINS = 8   # edges are drawn in this many line widths (by |weight| / max |weight|)


def graph_figure(graph, node_threshold: float = 0.8, edge_threshold: float = 0.98):
    """The pruned graph drawn over (position, layer): tokens at the bottom, logits on top, edges
    coloured by sign (blue positive, red negative) with width by |weight|."""
    import plotly.graph_objects as go

    from mechscope.figures import safe_token

    pruned = graph.prune(node_threshold, edge_threshold)
    names = graph.node_names()
    xy = {}
    n_feat = graph.n_features
    for i in pruned.node_mask.nonzero().squeeze(-1).tolist():
        if i < n_feat:
            layer, pos, f = graph.active_features[i].tolist()
            xy[i] = (pos + 0.15 * ((f % 5) - 2) / 2, layer + 1)
        elif i < graph.token_slice.start:
            layer, pos = divmod(i - n_feat, graph.n_pos)
            xy[i] = (pos + 0.3, layer + 1.3)
        elif i < graph.logit_slice.start:
            xy[i] = (i - graph.token_slice.start, 0)
        else:
            xy[i] = (graph.n_pos - 1 + 0.25 * (i - graph.logit_slice.start), graph.n_layers + 1)
    fig = go.Figure()
    w_max = float(graph.adjacency.abs().max()) or 1.0
    targets, sources = pruned.edge_mask.nonzero(as_tuple=True)
    # one line trace per (sign, width bin), segments separated by None: a trace per edge made drawing a
    # few thousand edges take minutes (plotly copies the figure on every add_trace)
    segments: dict[tuple[bool, int], tuple[list, list]] = {}
    for t, s in zip(targets.tolist(), sources.tolist(), strict=True):
        if s in xy and t in xy:
            w = float(graph.adjacency[t, s])
            xs, ys = segments.setdefault((w > 0, min(int(EDGE_WIDTH_BINS * abs(w) / w_max), EDGE_WIDTH_BINS - 1)),
                                         ([], []))
            xs += [xy[s][0], xy[t][0], None]
            ys += [xy[s][1], xy[t][1], None]
    for (positive, width_bin), (xs, ys) in sorted(segments.items()):
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", hoverinfo="skip", opacity=0.5, showlegend=False,
                                 line={"color": "#2563eb" if positive else "#dc2626",
                                       "width": 0.5 + 4 * (width_bin + 0.5) / EDGE_WIDTH_BINS}))
    ids = list(xy)
    fig.add_trace(go.Scatter(x=[xy[i][0] for i in ids], y=[xy[i][1] for i in ids], mode="markers",
                             text=[safe_token(names[i]) for i in ids], hoverinfo="text", showlegend=False,
                             marker={"size": 9, "color": [float(pruned.cumulative_influence[i]) for i in ids],
                                     "colorscale": "Viridis_r", "colorbar": {"title": "cum. influence"}}))
    r, c = graph.scores()
    fig.update_layout(
        title=f"attribution graph: replacement {r:.2f}, completeness {c:.2f}, {len(ids)} nodes, {len(targets)} edges",
        xaxis={"tickvals": list(range(graph.n_pos)), "ticktext": [safe_token(t, show_whitespace=True)
                                                                 for t in graph.token_strings], "title": "position"},
        yaxis={"title": "layer (0 = tokens, top = logits)"}, height=560)
    return fig
