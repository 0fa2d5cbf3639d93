"""Head detectors: one score per (layer, head), from attention patterns or from weights.

Pattern scores (mean attention weight, in [0, 1]; uniform attention over t keys scores ~1/t):

- previous-token: attention from position q to q - 1;
- duplicate-token: on [BOS] r r (random r repeated), from q in the second copy to q - n, the
  earlier occurrence of the same token;
- induction (prefix matching, Olsson et al. 2022): from q in the second copy to q - n + 1, the
  token after the earlier occurrence.

Lagged variants, each with the best lag per head (``HeadScores.lags``):

- lookback: attention from q to q - k, best k in 1..max_lag (previous-token is k = 1);
- lagged induction: from q in the second copy to q - n + d, the position d after the earlier
  occurrence, best d in 1..max_lag (d = 1 is the textbook induction head). A model with rotary
  positions can solve the copy with a shifted pair instead: a layer-0 head that looks back d tells
  key j which token sat at j - d, the induction head matches it against the current token and
  reads out the token at j - d + 1 through a lookback d - 1 head. The induction-2l organism does
  exactly this (d = 5), and the lag-1 detector scores it ~0.03.

Weight scores:

- copying (OV circuit, Elhage et al. 2021): for sampled tokens t, the map W_E[t] -> W_V W_O -> W_U
  restricted to the sampled tokens is a K x K matrix M; ``sum(eig(M)) / sum(|eig(M)|)`` is +1 for
  a head that copies (raises the logit of the token it attends to), and ``top1`` is the fraction
  of tokens whose own logit is the largest in their row.

Name-mover-like scores need the IOI task; see name_movers.py.
"""

from __future__ import annotations

import dataclasses

import torch

from mechscope.results import Result
from mechscope.tasks.induction import RepeatedTokens, random_token_pool, repeated_tokens


@dataclasses.dataclass
class HeadScores(Result):
    """scores: [n_layers n_heads]."""

    name: str
    scores: torch.Tensor
    description: str = ""
    lags: torch.Tensor | None = None  # [n_layers n_heads] the best lag, for lagged detectors

    def top(self, k: int = 5) -> list[tuple[int, int, float]]:
        """The k highest-scoring heads as (layer, head, score)."""
        flat = self.scores.reshape(-1)
        order = flat.argsort(descending=True)[:k]
        n_heads = self.scores.shape[1]
        return [(int(i) // n_heads, int(i) % n_heads, float(flat[i])) for i in order]

    def figure(self):
        import plotly.graph_objects as go

        text = None if self.lags is None else [[f"lag {int(v)}" for v in row] for row in self.lags]
        fig = go.Figure(go.Heatmap(z=self.scores.tolist(), colorscale="Viridis", colorbar={"title": "score"},
                                   text=text, texttemplate="%{text}" if text else None))
        fig.update_layout(title=f"{self.name} score per head", xaxis_title="head", yaxis_title="layer")
        return fig


def attention_patterns(model, tokens: torch.Tensor) -> torch.Tensor:
    """Attention patterns of every layer: [n_layers batch head q k]."""
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(model.cfg.n_layers)]
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens.to(model.device), names=names)
    return torch.stack([cache[n].float().cpu() for n in names])


def offset_score(patterns: torch.Tensor, queries: torch.Tensor, offset: int) -> torch.Tensor:
    """Mean attention from each query position q to key q - offset. patterns: [L batch H q k];
    queries: positions (all >= offset). Returns [L H]."""
    keys = queries - offset
    return patterns[:, :, :, queries, keys].mean(dim=(1, 3))


def previous_token_scores(model, tokens: torch.Tensor | None = None, patterns: torch.Tensor | None = None,
                          seed: int = 0) -> HeadScores:
    """Attention to the previous token, averaged over positions 1.. and sequences. tokens: [batch pos]
    (default: random repeated sequences)."""
    if patterns is None:
        tokens = tokens if tokens is not None else repeated_tokens(model, 8, 20, seed).tokens
        patterns = attention_patterns(model, tokens)
    queries = torch.arange(1, patterns.shape[-2])
    return HeadScores("previous-token", offset_score(patterns, queries, 1), "mean attention from q to q-1")


def duplicate_token_scores(model, rep: RepeatedTokens | None = None, patterns: torch.Tensor | None = None,
                           seed: int = 0) -> HeadScores:
    rep = rep or repeated_tokens(model, 8, 20, seed)
    patterns = attention_patterns(model, rep.tokens) if patterns is None else patterns
    queries = torch.arange(rep.second_copy.start, rep.second_copy.stop)
    return HeadScores("duplicate-token", offset_score(patterns, queries, rep.half_len),
                      "mean attention from the second copy to the same token's first occurrence")


def induction_scores(model, rep: RepeatedTokens | None = None, patterns: torch.Tensor | None = None,
                     seed: int = 0) -> HeadScores:
    rep = rep or repeated_tokens(model, 8, 20, seed)
    patterns = attention_patterns(model, rep.tokens) if patterns is None else patterns
    queries = torch.arange(rep.second_copy.start, rep.second_copy.stop)
    return HeadScores("induction", offset_score(patterns, queries, rep.half_len - 1),
                      "mean attention from the second copy to the token after the first occurrence")


def _best_lag(per_lag: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """per_lag[k - 1]: [L H] scores at lag k. Returns (best score, its lag), each [L H]."""
    best, index = torch.stack(per_lag).max(0)
    return best, index + 1


def lookback_scores(model, tokens: torch.Tensor | None = None, patterns: torch.Tensor | None = None,
                    max_lag: int = 8, seed: int = 0) -> HeadScores:
    """Attention from q to q - k at the best k in 1..max_lag per head (queries q >= max_lag)."""
    if patterns is None:
        tokens = tokens if tokens is not None else repeated_tokens(model, 8, 20, seed).tokens
        patterns = attention_patterns(model, tokens)
    queries = torch.arange(max_lag, patterns.shape[-2])
    best, lags = _best_lag([offset_score(patterns, queries, k) for k in range(1, max_lag + 1)])
    return HeadScores("lookback", best, f"mean attention from q to q-k, best k in 1..{max_lag}", lags=lags)


def lagged_induction_scores(model, rep: RepeatedTokens | None = None, patterns: torch.Tensor | None = None,
                            max_lag: int = 8, seed: int = 0) -> HeadScores:
    """Attention from the second copy to the position d after the earlier occurrence, best d in 1..max_lag."""
    rep = rep or repeated_tokens(model, 8, 20, seed)
    patterns = attention_patterns(model, rep.tokens) if patterns is None else patterns
    queries = torch.arange(rep.second_copy.start, rep.second_copy.stop)
    max_lag = min(max_lag, rep.half_len)
    best, lags = _best_lag([offset_score(patterns, queries, rep.half_len - d) for d in range(1, max_lag + 1)])
    return HeadScores("lagged-induction", best, "mean attention from the second copy to the position d after the "
                      f"earlier occurrence, best d in 1..{max_lag}", lags=lags)


@dataclasses.dataclass
class CopyingScores(Result):
    """eigen: [n_layers n_heads] positive-eigenvalue score in [-1, 1]; top1: [n_layers n_heads]."""

    eigen: torch.Tensor
    top1: torch.Tensor
    n_tokens: int

    def as_head_scores(self) -> HeadScores:
        return HeadScores("copying", self.eigen, "sum(eig)/sum(|eig|) of the OV circuit on sampled tokens")

    def figure(self):
        return self.as_head_scores().figure()


def copying_scores(model, n_tokens: int = 200, seed: int = 0) -> CopyingScores:
    """OV-circuit copying scores from the weights (embedding rows normalised like a norm would)."""
    pool = random_token_pool(model)
    gen = torch.Generator().manual_seed(seed)
    chosen = pool[torch.randperm(len(pool), generator=gen)[: min(n_tokens, len(pool))]]
    emb = model.W_E[chosen.to(model.W_E.device)].float()
    if model.cfg.norm == "layernorm":
        emb = emb - emb.mean(-1, keepdim=True)
    emb = emb / emb.pow(2).mean(-1, keepdim=True).sqrt().clamp_min(1e-8)      # [K d_model]
    w_u = model.W_U[:, chosen.to(model.W_U.device)].float()                      # [d_model K]
    eigen = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    top1 = torch.zeros_like(eigen)
    W_V, W_O = model.W_V.float(), model.W_O.float()
    K = len(chosen)
    with torch.no_grad():
        circuits = []
        for layer in range(model.cfg.n_layers):
            ov = torch.einsum("kd,hde->hke", emb, W_V[layer])                      # [H K d_head]
            out = torch.einsum("hke,hem->hkm", ov, W_O[layer])                     # [H K d_model]
            circuits.append(out @ w_u)                                             # [H K K]
        # a head whose OV circuit is zero up to rounding (it writes nothing the unembedding reads)
        # scores 0: its eigenvalues would be rounding noise, on which LAPACK can even fail to converge
        sizes = torch.stack([m.flatten(1).abs().amax(1) for m in circuits])       # [L H]
        live = sizes > 1e-4 * sizes.max().clamp_min(1e-30)
        for layer, m in enumerate(circuits):
            if live[layer].any():
                ev = torch.linalg.eigvals(m[live[layer]].double())
                eigen[layer, live[layer]] = (ev.sum(-1).real / ev.abs().sum(-1).clamp_min(1e-12)).float()
            top1[layer] = (m.argmax(-1) == torch.arange(K)).float().mean(-1) * live[layer]
    return CopyingScores(eigen=eigen, top1=top1, n_tokens=K)
