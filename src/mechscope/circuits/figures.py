"""Plotly figures for circuits: the edge graph (nodes by layer, edge width by |score|) and the curve.

Layout: one column per sublayer (input, a0, m0, a1, ..., logits); heads stack in their column; an
attention layer's input (the destination ``a{L}``) is the diamond under its heads, or on a split
graph each head's q / k / v inputs are three small diamonds left of the head. Edges are
drawn in a few width bins (one trace per bin and sign) so large graphs stay responsive; only the
`max_edges` largest are drawn. Hover shows each edge's name and score.
"""

from __future__ import annotations

import torch

from mechscope.circuits.graph import Graph

_BINS = 5


def _positions(graph: Graph) -> tuple[dict[str, tuple[float, float]], dict[str, tuple[float, float]]]:
    src, dst = {"input": (0.0, 0.0)}, {}
    top = (graph.n_heads - 1) / 2
    for layer in range(graph.n_layers):
        xa, xm = 1 + 2 * layer, 2 + 2 * layer
        for h in range(graph.n_heads):
            src[f"a{layer}.h{h}"] = (xa, top - h)
        src[f"m{layer}"] = (xm, 0.0)
        if graph.qkv:   # each head's q, k, v inputs left of it (a kv head's beside its group's first head)
            group = graph.n_heads // graph.kv_heads
            for i, (x, n) in enumerate(zip("qkv", graph.qkv_heads, strict=True)):
                for h in range(n):
                    dst[f"a{layer}.h{h}<{x}>"] = (xa - 0.5 + 0.12 * i, top - h * (1 if x == "q" else group) - 0.25)
        else:
            dst[f"a{layer}"] = (xa - 0.35, -top - 1.0)
        dst[f"m{layer}"] = (xm - 0.2, 0.0)
    dst["logits"] = (1 + 2 * graph.n_layers, 0.0)
    return src, dst


def graph_figure(graph: Graph, scores: torch.Tensor, *, mask: torch.Tensor | None = None, title: str = "",
                 max_edges: int = 300):
    """scores [n_src n_dst]; mask [n_src n_dst] bool (None: draw the `max_edges` largest by |score|)."""
    import plotly.graph_objects as go

    src_xy, dst_xy = _positions(graph)
    names, vec = graph.edge_names(), graph.to_edge_vector(scores.float())
    keep = graph.to_edge_vector(mask) if mask is not None else torch.ones_like(vec, dtype=torch.bool)
    order = [i for i in vec.abs().argsort(descending=True).tolist() if keep[i]][:max_edges]
    fig = go.Figure()
    biggest = float(vec.abs().max()) or 1.0
    for sign, colour in ((1, "rgba(200,60,60,0.55)"), (-1, "rgba(40,90,200,0.55)")):
        for b in range(_BINS):
            lo, hi = b / _BINS, (b + 1) / _BINS
            xs, ys, text = [], [], []
            for i in order:
                v = float(vec[i])
                frac = abs(v) / biggest
                if (v >= 0) != (sign > 0) or not (lo <= frac < hi or (b == _BINS - 1 and frac == 1.0)):
                    continue
                s, d = names[i].split("->")
                (x0, y0), (x1, y1) = src_xy[s], dst_xy[d]
                xs += [x0, x1, None]
                ys += [y0, y1, None]
                text += [f"{names[i]}: {v:+.4g}"] * 2 + [None]
            if xs:
                fig.add_scatter(x=xs, y=ys, mode="lines", line={"width": 0.5 + 8 * hi, "color": colour},
                                hoverinfo="text", text=text, showlegend=False)
    for label, xy, symbol in ([(n, p, "circle") for n, p in src_xy.items()]
                              + [(n, p, "diamond") for n, p in dst_xy.items() if n != "logits"]
                              + [("logits", dst_xy["logits"], "square")]):
        fig.add_scatter(x=[xy[0]], y=[xy[1]], mode="markers+text", text=[label], textposition="top center",
                        marker={"size": 11 if symbol == "circle" else 8, "symbol": symbol, "color": "#333"},
                        hoverinfo="text", showlegend=False)
    fig.update_layout(title=title or "circuit edges (red: score > 0, blue: < 0; width: |score|)",
                      xaxis={"visible": False}, yaxis={"visible": False}, plot_bgcolor="white",
                      height=200 + 60 * graph.n_heads)
    return fig
