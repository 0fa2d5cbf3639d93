"""Head detectors: one score per (layer, head), from attention patterns or from weights.

Pattern scores (mean attention weight, in [0, 1]; uniform attention over t keys scores ~1/t):

- previous-token: attention from position q to q - 1;
- duplicate-token: on [BOS] r r (random r repeated), from q in the second copy to q - n, the
  earlier occurrence of the same token;
- induction (prefix matching, Olsson et al. 2022): from q in the second copy to q - n + 1, the
  token after the earlier occurrence.

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

    def top(self, k: int = 5) -> list[tuple[int, int, float]]:
        """The k highest-scoring heads as (layer, head, score)."""
        flat = self.scores.reshape(-1)
        order = flat.argsort(descending=True)[:k]
        n_heads = self.scores.shape[1]
        return [(int(i) // n_heads, int(i) % n_heads, float(flat[i])) for i in order]

    def figure(self):
        import plotly.graph_objects as go

        fig = go.Figure(go.Heatmap(z=self.scores.tolist(), colorscale="Viridis", colorbar={"title": "score"}))
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
        for layer in range(model.cfg.n_layers):
            ov = torch.einsum("kd,hde->hke", emb, W_V[layer])                      # [H K d_head]
            out = torch.einsum("hke,hem->hkm", ov, W_O[layer])                     # [H K d_model]
            m = out @ w_u                                                      # [H K K]
            ev = torch.linalg.eigvals(m.double())
            eigen[layer] = (ev.sum(-1).real / ev.abs().sum(-1).clamp_min(1e-12)).float()
            top1[layer] = (m.argmax(-1) == torch.arange(K)).float().mean(-1)
    return CopyingScores(eigen=eigen, top1=top1, n_tokens=K)
