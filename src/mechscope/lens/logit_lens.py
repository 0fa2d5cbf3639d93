"""The logit lens (nostalgebraist 2020): read every layer's residual stream as a prediction.

Each residual point goes through the model's own final norm and unembedding. Per point we report
the next-token cross-entropy, the KL divergence from the model's final distribution, and how often
its top-1 token agrees with the final one; plus, for one example sequence, the top-k tokens at every
point and position (the figure). One forward per batch serves all points, and each batch is
reduced to sums before the next one, so memory stays bounded over any number of batches.

An optional `translate(point, resid) -> resid` turns the logit lens into any affine lens
(the tuned lens passes its translators here).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence

import torch

from mechscope.data.text import token_batches
from mechscope.errors import InputError
from mechscope.figures import safe_token
from mechscope.model.cache import accumulated_resid_labels, accumulated_resid_names
from mechscope.progress import progress
from mechscope.results import Result

Translate = Callable[[int, torch.Tensor], torch.Tensor]


@dataclasses.dataclass
class LogitLensConfig:
    top_k: int = 5               # tokens kept per point and position in the example grid
    example_positions: int = 16  # positions of the first sequence shown in the figure
    batch_size: int = 8          # only used when a single [n pos] tensor is given


@dataclasses.dataclass
class LogitLensResult(Result):
    """Per residual point (embed, after block 0, ..., after block L-1):

    ce: mean next-token cross-entropy (nats) of the lens prediction.
    kl_to_final: mean KL(final || lens) (nats) over the same positions.
    top1_agreement: share of positions where the lens's top token is the model's top token.
    final_ce: the model's own cross-entropy (equals ce[-1] for the plain logit lens).
    example_*: the first sequence: input tokens, and per [point][position] top-k tokens and probs.
    """

    lens: str
    layer_labels: list[str]
    ce: list[float]
    kl_to_final: list[float]
    top1_agreement: list[float]
    final_ce: float
    n_tokens: int
    example_tokens: list[str]
    example_top_tokens: list[list[list[str]]]
    example_top_probs: list[list[list[float]]]

    def figure(self):
        """Layer x position grid of the top-1 token (escaped) coloured by its probability."""
        import plotly.graph_objects as go

        probs = [[cell[0] for cell in row] for row in self.example_top_probs]
        text = [[show_token(cell[0]) for cell in row] for row in self.example_top_tokens]
        hover = [[
            "<br>".join(f"{show_token(t)}: {p:.3f}" for t, p in zip(toks, ps, strict=True))
            for toks, ps in zip(row_t, row_p, strict=True)]
            for row_t, row_p in zip(self.example_top_tokens, self.example_top_probs, strict=True)]
        n_pos = len(self.example_tokens)
        x = [f"{i}: {show_token(t)}" for i, t in enumerate(self.example_tokens)]
        fig = go.Figure(go.Heatmap(
            z=probs, x=x, y=self.layer_labels, text=text, texttemplate="%{text}",
            hovertext=hover, hoverinfo="text", colorscale="Blues", zmin=0, zmax=1,
            colorbar={"title": "top-1 prob"},
        ))
        fig.update_layout(title=f"{self.lens}: top prediction at each layer (rows) and input position",
                          xaxis_title="input token", yaxis_title="after block",
                          height=max(300, 40 * len(self.layer_labels) + 150),
                          width=max(600, 70 * n_pos + 200))
        return fig

    def curves_figure(self):
        """Cross-entropy and KL to final per layer."""
        import plotly.graph_objects as go

        fig = go.Figure()
        fig.add_trace(go.Scatter(x=self.layer_labels, y=self.ce, name="cross-entropy", mode="lines+markers"))
        fig.add_trace(go.Scatter(x=self.layer_labels, y=self.kl_to_final, name="KL to final",
                                 mode="lines+markers"))
        fig.add_hline(y=self.final_ce, line_dash="dot", annotation_text="model CE")
        fig.update_layout(title=f"{self.lens}: loss by layer", xaxis_title="after block", yaxis_title="nats")
        return fig


def show_token(token: str) -> str:
    """A token as plotly figure text that shows literally: markup escaped, whitespace made visible,
    an empty decoding (e.g. SentencePiece's bare word-start piece) shown as ∅."""
    return safe_token(token, show_whitespace=True) if token else "∅"


class _Sums:
    """Running sums of per-point metrics over batches."""

    def __init__(self, n_points: int):
        self.ce = torch.zeros(n_points, dtype=torch.float64)
        self.kl = torch.zeros(n_points, dtype=torch.float64)
        self.agree = torch.zeros(n_points, dtype=torch.float64)
        self.final_ce = 0.0
        self.n = 0


def lens_log_probs(model, resid: torch.Tensor, point: int, translate: Translate | None = None) -> torch.Tensor:
    """[batch pos d_vocab] log-probabilities of the lens at one point, from resid [batch pos d_model]."""
    if translate is not None:
        resid = translate(point, resid)
    logits = model.unembed(model.ln_final(resid))
    return torch.log_softmax(logits.float(), dim=-1)


def run_lens(model, tokens: torch.Tensor | Iterable[torch.Tensor], cfg: LogitLensConfig | None = None,
             translate: Translate | None = None, lens_name: str = "logit lens",
             points: Sequence[int] | None = None) -> LogitLensResult:
    """Apply a lens to residual points over token batches [batch pos] (pos >= 2).

    points: indices into the n_layers + 1 residual points (0 = embed, i = after block i-1) to read;
    None reads all of them. Cost: one forward per batch plus one [tokens d_model] x [d_model d_vocab]
    unembedding per point read, so a subset of points bounds the cost on deep, wide-vocabulary models.
    """
    return run_lenses(model, tokens, {lens_name: translate}, cfg, points)[lens_name]


def run_lenses(model, tokens: torch.Tensor | Iterable[torch.Tensor], lenses: dict[str, Translate | None],
               cfg: LogitLensConfig | None = None, points: Sequence[int] | None = None) -> dict[str, LogitLensResult]:
    """Several lenses ({name: translate}, None for the logit lens) read off one forward per batch:
    each gives what `run_lens` gives it alone."""
    cfg = cfg or LogitLensConfig()
    n_layers = model.cfg.n_layers
    points = list(range(n_layers + 1)) if points is None else _check_points(points, n_layers)
    all_names = accumulated_resid_names(n_layers)
    names = [all_names[p] for p in points]
    sums = {lens: _Sums(len(names)) for lens in lenses}
    example: dict[str, list] = {lens: [] for lens in lenses}   # per point: topk over the first sequence's first positions
    example_tokens: list[str] = []
    for batch in progress(token_batches(tokens, cfg.batch_size), desc=" + ".join(lenses)):
        batch = batch.to(model.device)
        first_batch = not example_tokens
        if first_batch:
            example_tokens = model.to_str_tokens(batch[0, :cfg.example_positions].cpu())
        with torch.no_grad():
            logits, cache = model.run_with_cache(batch, names=names)
            final = torch.log_softmax(logits[:, :-1].float(), dim=-1)
            final_p = final.exp()
            final_top = final.argmax(-1)
            targets = batch[:, 1:, None]
            final_ce = float(-final.gather(-1, targets).sum())
            for lens, translate in lenses.items():
                s = sums[lens]
                s.final_ce += final_ce
                for index, (point, name) in enumerate(zip(points, names, strict=True)):
                    lp = lens_log_probs(model, cache[name], point, translate)
                    if first_batch:
                        example[lens].append(lp[0, :cfg.example_positions].exp().topk(cfg.top_k, dim=-1))
                    lp = lp[:, :-1]
                    s.ce[index] += float(-lp.gather(-1, targets).sum())
                    s.kl[index] += float((final_p * (final - lp)).sum())
                    s.agree[index] += float((lp.argmax(-1) == final_top).sum())
                s.n += targets.numel()
        del cache
    return {lens: _lens_result(model, lens, points, sums[lens], example[lens], example_tokens) for lens in lenses}


def _lens_result(model, lens_name: str, points: list[int], sums: _Sums, example: list,
                 example_tokens: list[str]) -> LogitLensResult:
    n_layers = model.cfg.n_layers
    if sums.n == 0:
        raise InputError("the lens got no tokens: give at least one sequence of two or more tokens")
    top_tokens = [[model.to_str_tokens(ids.cpu()) for ids in top.indices] for top in example]
    top_probs = [top.values.tolist() for top in example]
    return LogitLensResult(
        lens=lens_name,
        layer_labels=[accumulated_resid_labels(n_layers)[p] for p in points],
        ce=(sums.ce / sums.n).tolist(),
        kl_to_final=(sums.kl / sums.n).tolist(),
        top1_agreement=(sums.agree / sums.n).tolist(),
        final_ce=sums.final_ce / sums.n,
        n_tokens=sums.n,
        example_tokens=example_tokens,
        example_top_tokens=top_tokens,
        example_top_probs=top_probs,
    )


def _check_points(points: Sequence[int], n_layers: int) -> list[int]:
    points = sorted({int(p) for p in points})
    if not points or points[0] < 0 or points[-1] > n_layers:
        raise InputError(f"lens points must lie in 0..{n_layers} (embed .. after the last block), got {points}")
    return points


def logit_lens(model, tokens: torch.Tensor | Iterable[torch.Tensor],
               cfg: LogitLensConfig | None = None) -> LogitLensResult:
    """The logit lens over token batches: final norm + unembedding applied at every residual point.

    tokens: LongTensor [n pos] or an iterable of [batch pos] batches (e.g. `eval_token_batches`).
    """
    return run_lens(model, tokens, cfg, translate=None, lens_name="logit lens")
