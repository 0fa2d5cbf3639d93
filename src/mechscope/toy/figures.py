"""Plotly figures for toy models of superposition, in the style of the paper's plots."""

from __future__ import annotations

import math

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

_MAX_PANELS_PER_ROW = 10


def loss_curves_figure(steps: list[int], history: torch.Tensor, feature_probability: torch.Tensor) -> go.Figure:
    """Per-instance training loss (history [n_logged, I]) against step, log scale."""
    fig = go.Figure()
    for i in range(history.shape[1]):
        fig.add_trace(go.Scatter(x=steps, y=history[:, i].tolist(), mode="lines",
                                 name=f"p={feature_probability[i].item():.3g}"))
    fig.update_layout(title="Training loss per instance", xaxis_title="step", yaxis_title="loss",
                      yaxis_type="log", template="plotly_white")
    return fig


def dimensionality_figure(sweep) -> go.Figure:
    """Dimensions per feature (line) and each feature's D_i (dots) against 1/(1-S), fractions marked."""
    from mechscope.toy.measures import POLYTOPE_FRACTIONS

    x = sweep.inverse_density
    fig = go.Figure()
    xs, ys, texts = [], [], []
    for i in range(len(x)):
        for j in range(sweep.n_features):
            if sweep.feature_norms[i, j] >= 0.1:  # skip features the model ignores (D ~ 0)
                xs.append(x[i].item())
                ys.append(sweep.feature_dimensionality[i, j].item())
                texts.append(f"feature {j}, ‖W‖={sweep.feature_norms[i, j].item():.2f}")
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", name="feature dimensionality D_i",
                             marker=dict(size=4, opacity=0.35, color="#4c72b0"), text=texts))
    fig.add_trace(go.Scatter(x=x.tolist(), y=sweep.dims_per_feature.tolist(), mode="lines+markers",
                             name="dimensions per feature m/‖W‖²_F", line=dict(color="black", width=2)))
    for name, value in POLYTOPE_FRACTIONS.items():
        fig.add_hline(y=value, line=dict(dash="dot", width=1, color="gray"),
                      annotation_text=f"{_fraction_text(value)} {name}", annotation_position="right")
    fig.update_layout(title=f"Dimensionality vs sparsity ({sweep.n_features} features, {sweep.n_hidden} dims)",
                      xaxis_title="1 / (1 − S)", yaxis_title="dimensions per feature",
                      xaxis_type="log", yaxis_range=[0, 1.1], template="plotly_white",
                      margin=dict(r=170))
    return fig


def _fraction_text(value: float) -> str:
    for den in range(1, 9):
        num = round(value * den)
        if abs(num / den - value) < 1e-9:
            return f"{num}/{den}" if den > 1 else f"{num}"
    return f"{value:.3g}"


def geometry_figure(geometry) -> go.Figure:
    """One small panel per instance: the 2-D feature vectors, coloured by importance."""
    n = geometry.vectors.shape[0]
    cols = min(n, _MAX_PANELS_PER_ROW)
    rows = math.ceil(n / cols)
    titles = [f"p={geometry.feature_probability[i].item():.3g}<br>{geometry.shapes[i].label}" for i in range(n)]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.02,
                        vertical_spacing=0.12)
    for i in range(n):
        r, c = divmod(i, cols)
        imp = geometry.importance[i]
        top = max(imp.max().item(), 1e-12)
        for j in range(geometry.vectors.shape[1]):
            vx, vy = geometry.vectors[i, j].tolist()
            shade = imp[j].item() / top
            color = f"rgb({int(250 - 200 * shade)},{int(200 - 150 * shade)},{int(80 + 100 * shade)})"
            fig.add_trace(go.Scatter(x=[0, vx], y=[0, vy], mode="lines+markers", showlegend=False,
                                     line=dict(color=color, width=2), marker=dict(size=[0, 6]),
                                     name=f"feature {j}", hovertext=f"feature {j}, importance {imp[j].item():.3g}"),
                          row=r + 1, col=c + 1)
    fig.update_xaxes(range=[-1.5, 1.5], showticklabels=False, zeroline=False)
    fig.update_yaxes(range=[-1.5, 1.5], showticklabels=False, zeroline=False, scaleanchor="x")
    for k in range(2, n + 1):
        fig.update_yaxes(scaleanchor=f"x{k}", row=(k - 1) // cols + 1, col=(k - 1) % cols + 1)
    fig.update_layout(title="Feature vectors W_i in the hidden plane (darker = more important)",
                      height=230 * rows + 80, template="plotly_white")
    return fig


def phase_figure(diagram) -> go.Figure:
    """Which phase the extra feature is in, over feature density x relative importance."""
    names = list(diagram.PHASES)
    z = diagram.phase.tolist()
    colors = ["#dddddd", "#4c72b0", "#dd8452"]
    scale = []
    for k, color in enumerate(colors):
        scale += [[k / len(colors), color], [(k + 1) / len(colors), color]]
    fig = go.Figure(go.Heatmap(
        z=z, x=[f"{v:.3g}" for v in diagram.relative_importance.tolist()],
        y=[f"{v:.3g}" for v in diagram.feature_density.tolist()],
        zmin=-0.5, zmax=len(names) - 0.5, colorscale=scale,
        colorbar=dict(tickvals=list(range(len(names))), ticktext=names),
        text=[[names[v] for v in row] for row in z], hoverinfo="x+y+text"))
    fig.update_layout(title=f"Phase diagram: 2 features in 1 dimension ({diagram.activation})",
                      xaxis_title="relative importance of the extra feature",
                      yaxis_title="feature density 1 − S", template="plotly_white")
    return fig


def computation_figure(result) -> go.Figure:
    """W₁ (neurons x features) for each sparsity of the absolute-value task."""
    n = result.W_in.shape[0]
    cols = min(n, 5)
    rows = math.ceil(n / cols)
    titles = [f"p={result.feature_probability[i].item():.3g}: capacity {result.capacity[i]:.1f}"
              for i in range(n)]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles)
    limit = max(result.W_in.abs().max().item(), 1e-6)
    for i in range(n):
        r, c = divmod(i, cols)
        fig.add_trace(go.Heatmap(z=result.W_in[i].tolist(), zmin=-limit, zmax=limit, colorscale="RdBu",
                                 showscale=(i == 0)), row=r + 1, col=c + 1)
    fig.update_xaxes(title_text="feature")
    fig.update_yaxes(title_text="neuron", autorange="reversed")
    fig.update_layout(title="Absolute value in superposition: input weights W₁ per sparsity",
                      height=300 * rows + 80, template="plotly_white")
    return fig
