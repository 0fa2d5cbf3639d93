"""Induction on repeated random spans after random prefixes, over several span lengths.

Each row is [BOS] p_1..p_P r_1..r_n r_1..r_n f_1.. with P drawn per row in 0..max_prefix (so the
copy never starts at the same absolute position: absolute position cannot stand in for content)
and filler after the second copy so that rows have one length (causal: the filler changes nothing
before it). For every span length n:

- the loss on tokens 2..n of the first copy and of the second copy, per row;
- per head and lag d in 0..min(max_lag, n/2), the mean attention from the second copy at q to q - n + d
  (d = 0: the earlier occurrence of the same token, "duplicate"; d = 1: the token after it, the
  textbook induction/prefix-matching score; d > 1: a shifted circuit, see attention/detectors.py).

A head that attends a fixed relative offset, whatever the content, scores at one span length
only; an induction head scores at every length. At the span with the largest loss drop the
causal check mean-ablates (hook_z, mean over the same rows at each position) each candidate head
(the strongest lagged-induction heads) and measures the share of the drop it undoes.
"""

from __future__ import annotations

import dataclasses

import torch

from mechscope.attention.icl import per_token_loss
from mechscope.errors import InputError
from mechscope.model.interventions import mean_ablate
from mechscope.progress import progress
from mechscope.results import Result
from mechscope.tasks.induction import bos_prefix, random_token_pool


@dataclasses.dataclass
class SpanRows:
    """tokens: [n_rows T]; starts: [n_rows] position of each row's first copy; span: n."""

    tokens: torch.Tensor
    starts: torch.Tensor
    span: int

    def first_copy_targets(self) -> torch.Tensor:
        """[n_rows n-1] loss positions t whose target t+1 is token 2..n of the first copy."""
        return self.starts[:, None] + torch.arange(self.span - 1)[None]

    def second_copy_targets(self) -> torch.Tensor:
        return self.first_copy_targets() + self.span

    def second_copy_queries(self) -> torch.Tensor:
        """[n_rows n] positions of the second copy."""
        return self.starts[:, None] + self.span + torch.arange(self.span)[None]


def span_rows(model, n_rows: int, span: int, max_prefix: int, seed: int) -> SpanRows:
    """Rows [BOS] prefix(P) r r filler with P uniform in 0..max_prefix per row; r distinct tokens."""
    pool = random_token_pool(model)
    bos = bos_prefix(model)
    length = len(bos) + max_prefix + 2 * span
    if span < 2 or len(pool) < span or length > model.cfg.n_ctx:
        raise InputError(f"span {span} with prefixes up to {max_prefix} needs {length} positions and {span} "
                         f"distinct tokens; the model has {model.cfg.n_ctx} positions and {len(pool)} tokens")
    gen = torch.Generator().manual_seed(seed)
    rows, starts = [], []
    for _ in range(n_rows):
        n_prefix = int(torch.randint(0, max_prefix + 1, (1,), generator=gen))
        span_ids = pool[torch.randperm(len(pool), generator=gen)[:span]]
        other = pool[torch.randint(0, len(pool), (max_prefix,), generator=gen)]
        row = torch.cat([torch.tensor(bos, dtype=torch.long), other[:n_prefix], span_ids, span_ids,
                         other[n_prefix:]])
        rows.append(row)
        starts.append(len(bos) + n_prefix)
    return SpanRows(tokens=torch.stack(rows), starts=torch.tensor(starts), span=span)


@dataclasses.dataclass
class InductionSweep(Result):
    """Loss and attention per span length, and the causal check at the span with the largest drop.

    first_loss / second_loss: [n_spans n_rows] mean loss per row on tokens 2..n of each copy.
    lag_scores: [n_spans max_lag+1 n_layers n_heads] attention from the second copy to q - n + d.
    previous_token: [n_spans n_layers n_heads] attention from every position q >= 1 to q - 1.
    candidates: heads checked causally, "L.H"; ablation_share: share of the drop each undoes.
    """

    spans: list[int]
    first_loss: torch.Tensor
    second_loss: torch.Tensor
    lag_scores: torch.Tensor
    previous_token: torch.Tensor
    best_span: int
    candidates: list[tuple[int, int]]
    candidate_lags: list[int]
    ablation_share: list[float]
    joint_ablation_share: float
    max_prefix: int

    _json_exclude = ("first_loss", "second_loss", "lag_scores", "previous_token")

    @property
    def drop(self) -> list[float]:
        """Loss drop first -> second copy per span (nats)."""
        return (self.first_loss.mean(1) - self.second_loss.mean(1)).tolist()

    @property
    def ratio(self) -> list[float]:
        """Second-copy loss / first-copy loss per span (1 = no copying, 0 = perfect)."""
        return (self.second_loss.mean(1) / self.first_loss.mean(1)).tolist()

    def induction_scores(self, lag: int = 1) -> torch.Tensor:
        """[n_spans n_layers n_heads] attention to q - n + lag."""
        return self.lag_scores[:, lag]

    def figure(self):
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        fig = make_subplots(rows=1, cols=2, subplot_titles=("loss on each copy by span length",
                                                            "best head score by lag (all spans)"))
        fig.add_trace(go.Scatter(x=self.spans, y=self.first_loss.mean(1).tolist(), name="first copy"), 1, 1)
        fig.add_trace(go.Scatter(x=self.spans, y=self.second_loss.mean(1).tolist(), name="second copy"), 1, 1)
        best = self.lag_scores.flatten(2).max(-1).values   # [n_spans lags]
        for i, span in enumerate(self.spans):
            fig.add_trace(go.Bar(x=list(range(best.shape[1])), y=best[i].tolist(), name=f"span {span}"), 1, 2)
        fig.update_xaxes(title_text="span length (tokens)", row=1, col=1)
        fig.update_xaxes(title_text="lag d (attend q - n + d; 1 = textbook induction)", row=1, col=2)
        fig.update_yaxes(title_text="loss (nats)", row=1, col=1)
        fig.update_layout(title="induction on repeated random spans after random prefixes")
        return fig


@torch.no_grad()
def induction_sweep(model, spans: tuple[int, ...] = (8, 16, 32), n_rows: int = 16, max_prefix: int = 16,
                    max_lag: int = 8, n_candidates: int = 6, seed: int = 0) -> InductionSweep:
    """Run the sweep (spans longer than the context allows are dropped). See the module docstring."""
    bos = len(bos_prefix(model))
    spans = tuple(s for s in spans if bos + max_prefix + 2 * s <= model.cfg.n_ctx)
    if not spans:
        raise InputError(f"the context ({model.cfg.n_ctx}) is too short for repeated spans of 8 tokens")
    n_layers = model.cfg.n_layers
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(n_layers)]
    z_names = [f"blocks.{layer}.attn.hook_z" for layer in range(n_layers)]
    firsts, seconds, scores, data, previous, z_means = [], [], [], [], [], []
    for i, span in enumerate(progress(spans, desc="induction spans")):
        rows = span_rows(model, n_rows, span, max_prefix, seed + i)
        logits, cache = model.run_with_cache(rows.tokens.to(model.device), names=names + z_names)
        z_means.append({name: cache[name].mean(0) for name in z_names})   # the ablation values, [pos H d_head]
        loss = _loss(logits, rows.tokens)
        firsts.append(loss.gather(1, rows.first_copy_targets()).mean(1))
        seconds.append(loss.gather(1, rows.second_copy_targets()).mean(1))
        queries = rows.second_copy_queries()                               # [rows n]
        per_lag = []
        for d in range(min(max_lag, span // 2) + 1):  # d near n would be a lookback of n - d, not a lag
            keys = queries - span + d
            per_layer = []
            for name in names:
                pattern = cache[name].float().cpu()                        # [rows H q k]
                picked = pattern[torch.arange(len(rows.starts))[:, None], :, queries, keys]  # [rows n H]
                per_layer.append(picked.mean((0, 1)))
            per_lag.append(torch.stack(per_layer))                         # [L H]
        per_lag += [torch.zeros_like(per_lag[0])] * (max_lag + 1 - len(per_lag))
        scores.append(torch.stack(per_lag))
        q = torch.arange(1, rows.tokens.shape[1])
        previous.append(torch.stack([cache[name].float().cpu()[:, :, q, q - 1].mean((0, 2)) for name in names]))
        data.append(rows)
        del cache
    first, second = torch.stack(firsts), torch.stack(seconds)
    drops = first.mean(1) - second.mean(1)
    best = int(drops.argmax())
    lag_scores = torch.stack(scores)                                       # [spans lags L H]
    lagged = lag_scores[best, 1:]                                          # lags >= 1
    flat_best, flat_lag = lagged.max(0)                                    # [L H]
    order = flat_best.flatten().argsort(descending=True)[:n_candidates].tolist()
    candidates = [(i // model.cfg.n_heads, i % model.cfg.n_heads) for i in order]
    lags = [int(flat_lag[a, b]) + 1 for a, b in candidates]
    rows = data[best]
    base = float(second[best].mean())
    drop = float(drops[best])
    shares = [_share(model, rows, z_means[best], [head], base, drop) for head in candidates]
    joint = _share(model, rows, z_means[best], candidates, base, drop) if candidates else float("nan")
    return InductionSweep(spans=list(spans), first_loss=first, second_loss=second, lag_scores=lag_scores,
                          previous_token=torch.stack(previous), best_span=spans[best], candidates=candidates, candidate_lags=lags,
                          ablation_share=shares, joint_ablation_share=joint, max_prefix=max_prefix)


def _loss(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """[rows T-1] next-token loss."""
    logp = logits[:, :-1].float().log_softmax(-1).cpu()
    return -logp.gather(-1, tokens[:, 1:, None])[..., 0]


def _share(model, rows: SpanRows, z_mean: dict[str, torch.Tensor], heads: list[tuple[int, int]],
           base_second: float, drop: float) -> float:
    """Share of the first->second copy loss drop undone by mean-ablating `heads` (hook_z) to `z_mean`
    ({hook_z name: [pos H d_head]}, the mean over the same rows' clean run)."""
    if drop <= 0:
        return 0.0
    names = sorted({f"blocks.{layer}.attn.hook_z" for layer, _ in heads})
    hooks = {name: mean_ablate(z_mean[name], heads=sorted(h for at, h in heads
                                                          if f"blocks.{at}.attn.hook_z" == name))
             for name in names}
    with model.hooks(fwd=hooks):
        loss = per_token_loss(model, rows.tokens)
    ablated = float(loss.gather(1, rows.second_copy_targets()).mean())
    return (ablated - base_second) / drop
