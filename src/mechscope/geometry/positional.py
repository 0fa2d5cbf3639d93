"""The geometry of learned positional embeddings (Yedidia 2023; Chughtai & Lau 2024).

GPT-2's W_pos is close to a helix: a first-token outlier, a monotone "how late" direction and a
sinusoidal pair. We take the PCA of rows 1..n (row 0 is set apart), and measure: the variance the
top components explain; |Spearman| of PC1 against position; a shared-frequency sinusoid fit of
PC2 and PC3; and how far row 0 lies from the rest, in units of the rows' own spread.
Models with rotary or no positional embeddings have no W_pos: NotApplicableError.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mechscope.errors import NotApplicableError
from mechscope.geometry.fits import pca, sinusoid_fit, spearman
from mechscope.results import Result


@dataclasses.dataclass
class PositionalConfig:
    max_positions: int | None = None   # rows 0..max_positions-1 of W_pos (None: all)
    n_components: int = 10             # components reported


@dataclasses.dataclass
class PositionalGeometryResult(Result):
    """explained: [n_components] variance share per PC of rows 1..n; top3_explained: their sum for PCs 1-3.
    pc1_spearman: Spearman of PC1 score against position (sign fixed so a monotone PC1 is +1).
    helix_r2: [2] R² of the shared-frequency sinusoid fit of PC2 and PC3; helix_period in positions;
    helix_phase_gap: their phase difference (π/2 for a circle).
    first_token_outlier: ||row 0 - mean(rows 1..)|| / mean ||row_i - mean(rows 1..)||.
    scores: [n_positions-1 3] PC1-3 coordinates of rows 1.. (for the figure).
    """

    n_positions: int
    explained: list[float]
    top3_explained: float
    pc1_spearman: float
    helix_r2: list[float]
    helix_period: float
    helix_phase_gap: float
    first_token_outlier: float
    scores: list[list[float]]
    first_row_scores: list[float]

    _json_exclude = ("scores",)

    def figure(self):
        """3D scatter of rows 1.. in PC1-3, coloured by position, row 0 marked (when it fits in view)."""
        import plotly.graph_objects as go

        s = np.asarray(self.scores)
        positions = np.arange(1, len(s) + 1)
        fig = go.Figure(go.Scatter3d(
            x=s[:, 0], y=s[:, 1], z=s[:, 2], mode="markers+lines",
            marker={"size": 3, "color": positions, "colorscale": "Viridis", "colorbar": {"title": "position"}},
            line={"color": "rgba(120,120,120,0.4)"}, text=[f"position {p}" for p in positions],
            hoverinfo="text", name="rows 1.."))
        fig.add_trace(go.Scatter3d(x=[self.first_row_scores[0]], y=[self.first_row_scores[1]],
                                   z=[self.first_row_scores[2]], mode="markers", name="row 0",
                                   marker={"size": 6, "color": "red", "symbol": "diamond"}))
        fig.update_layout(
            title=(f"positional embeddings in PC1-3 ({100 * self.top3_explained:.0f}% of variance); "
                   f"PC1 vs position ρ={self.pc1_spearman:.2f}, helix R²={np.mean(self.helix_r2):.2f}"),
            scene={"xaxis_title": "PC1", "yaxis_title": "PC2", "zaxis_title": "PC3"})
        return fig


def positional_geometry_of(w_pos: np.ndarray, cfg: PositionalConfig | None = None) -> PositionalGeometryResult:
    """The analysis on a matrix of positional embeddings [n_positions d_model] (n_positions >= 5)."""
    cfg = cfg or PositionalConfig()
    w = np.asarray(w_pos, dtype=np.float64)
    if cfg.max_positions is not None:
        w = w[:cfg.max_positions]
    if len(w) < 5:
        raise NotApplicableError(f"only {len(w)} positional rows: the helix analysis needs at least 5")
    rest = w[1:]
    fit = pca(rest, n_components=max(3, cfg.n_components))
    positions = np.arange(1, len(w))
    helix = sinusoid_fit(positions, fit.scores[:, 1:3])
    centre = rest.mean(axis=0)
    spread = np.linalg.norm(rest - centre, axis=1).mean()
    first = w[0] - centre
    return PositionalGeometryResult(
        n_positions=len(w),
        explained=fit.explained[:cfg.n_components].tolist(),
        top3_explained=float(fit.explained[:3].sum()),
        pc1_spearman=spearman(positions, fit.scores[:, 0]),
        helix_r2=helix.r2, helix_period=helix.period, helix_phase_gap=helix.phase_gap,
        first_token_outlier=float(np.linalg.norm(first) / spread) if spread > 0 else float("inf"),
        scores=fit.scores[:, :3].tolist(),
        first_row_scores=(fit.components[:3] @ first).tolist(),
    )


def positional_geometry(model, cfg: PositionalConfig | None = None) -> PositionalGeometryResult:
    """The helix analysis of `model.W_pos`; NotApplicableError for rotary / absent positions."""
    if model.cfg.positional != "learned" or model.W_pos is None:
        kind = model.cfg.positional
        why = ("it uses rotary position embeddings, which rotate queries and keys inside attention"
               if kind == "rotary" else f"its positional scheme is {kind!r}")
        raise NotApplicableError(
            f"this model has no learned positional embedding matrix (W_pos): {why}. The positional "
            "helix analysis needs learned absolute positions, as in GPT-2.")
    return positional_geometry_of(model.W_pos.detach().float().cpu().numpy(), cfg)
