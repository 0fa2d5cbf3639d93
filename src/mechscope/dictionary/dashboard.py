"""Feature dashboards: one static HTML page showing, per latent, what it fires on and what it writes.

For each latent: the top-activating token contexts (each token shaded by the latent's activation),
the histogram of its nonzero activations, and its logit effects: the tokens whose unembedding is
most and least aligned with its decoder direction, W_dec[i] @ W_U (residual-stream hooks only).
Every token string is HTML-escaped. No JavaScript, no network: the file opens anywhere.
"""

from __future__ import annotations

import dataclasses
import html
from pathlib import Path

import torch
from torch import Tensor

from mechscope.data.activation_store import capture_activations
from mechscope.dictionary.base import SparseAutoencoder
from mechscope.errors import InputError
from mechscope.io import write_text_atomic
from mechscope.results import Result


@dataclasses.dataclass
class Context:
    tokens: list[str]
    activations: list[float]
    max_position: int  # index in `tokens` of the token the context was chosen for


@dataclasses.dataclass
class FeatureCard:
    latent: int
    firing_frequency: float
    max_activation: float
    contexts: list[Context]
    histogram_counts: list[int]
    histogram_edges: list[float]
    top_logits: list[tuple[str, float]] | None
    bottom_logits: list[tuple[str, float]] | None


@dataclasses.dataclass
class FeatureDashboard(Result):
    hook_name: str
    cards: list[FeatureCard]

    def figure(self):
        import plotly.graph_objects as go

        return go.Figure(go.Bar(x=[str(c.latent) for c in self.cards], y=[c.firing_frequency for c in self.cards]),
                         layout={"title": "firing frequency of the latents shown", "xaxis_title": "latent"})

    def to_html(self, title: str = "SAE feature dashboard") -> str:
        return render_html(self, title)

    def save_html(self, path: str | Path, title: str = "SAE feature dashboard") -> Path:
        return write_text_atomic(path, self.to_html(title))


@torch.no_grad()
def feature_dashboard(sae: SparseAutoencoder, model, tokens: Tensor, latents: list[int] | None = None, *,
                      n_latents: int = 10, n_contexts: int = 8, window: int = 8, n_logits: int = 8,
                      batch_size: int = 8, seed: int = 0) -> FeatureDashboard:
    """Dashboard data for `latents` (default: n_latents alive latents chosen with `seed`) over tokens [n_seq seq]."""
    hook = sae.cfg.hook_name
    if not hook:
        raise InputError("the SAE has no hook_name; set sae.cfg.hook_name to the hook it was trained on")
    sae.eval()
    acts = torch.cat([sae.encode(capture_activations(model, b.to(model.device), [hook])[hook].to(sae.W_enc.dtype))
                      for b in tokens.split(batch_size)]).reshape(tokens.shape[0], tokens.shape[1], sae.d_sae)
    freq = (acts > 0).float().mean((0, 1))
    if latents is None:
        alive = (freq > 0).nonzero().squeeze(-1)
        g = torch.Generator().manual_seed(seed)
        latents = sorted(alive[torch.randperm(alive.numel(), generator=g)[:n_latents]].tolist())
    bad = [i for i in latents if not 0 <= i < sae.d_sae]
    if bad:
        raise InputError(f"latents {bad} out of range 0..{sae.d_sae - 1}")
    logit_dirs = _logit_effects(sae, model, latents)
    cards = []
    for j, i in enumerate(latents):
        a = acts[..., i]
        nonzero = a[a > 0]
        counts, edges = (torch.histogram(nonzero.float().cpu(), bins=20) if nonzero.numel()
                         else (torch.zeros(0), torch.zeros(0)))
        cards.append(FeatureCard(
            latent=i, firing_frequency=float(freq[i]), max_activation=float(a.max()),
            contexts=_top_contexts(model, tokens, a, n_contexts, window),
            histogram_counts=[int(c) for c in counts.tolist()], histogram_edges=edges.tolist(),
            top_logits=None if logit_dirs is None else _named(model, logit_dirs[j], n_logits, largest=True),
            bottom_logits=None if logit_dirs is None else _named(model, logit_dirs[j], n_logits, largest=False),
        ))
    return FeatureDashboard(hook_name=hook, cards=cards)


def _logit_effects(sae: SparseAutoencoder, model, latents: list[int]) -> Tensor | None:
    """[len(latents) d_vocab] W_dec[i] @ W_U, or None when the hook is not d_model wide."""
    W_U = getattr(model, "W_U", None)
    if W_U is None or W_U.shape[0] != sae.d_in:
        return None
    return (sae.W_dec[latents].to(W_U.dtype) / sae.input_scale) @ W_U


def _named(model, scores: Tensor, n: int, largest: bool) -> list[tuple[str, float]]:
    values, idx = scores.topk(min(n, scores.numel()), largest=largest)
    return [(model.tokenizer.decode([int(t)]) if model.tokenizer is not None else str(int(t)), float(v))
            for t, v in zip(idx.tolist(), values.tolist(), strict=False)]


def _top_contexts(model, tokens: Tensor, a: Tensor, n: int, window: int) -> list[Context]:
    """The n (sequence, position) pairs with the largest activation a [n_seq seq], with `window` tokens before."""
    flat = a.reshape(-1)
    top = flat.topk(min(n, flat.numel()))
    out = []
    for value, index in zip(top.values.tolist(), top.indices.tolist(), strict=False):
        if value <= 0:
            break
        s, p = divmod(index, a.shape[1])
        lo, hi = max(0, p - window), min(a.shape[1], p + 3)
        ids = tokens[s, lo:hi].tolist()
        strs = [model.tokenizer.decode([t]) for t in ids] if model.tokenizer is not None else [str(t) for t in ids]
        out.append(Context(tokens=strs, activations=a[s, lo:hi].tolist(), max_position=p - lo))
    return out


def _svg_histogram(counts: list[int], edges: list[float], width: int = 260, height: int = 70) -> str:
    if not counts:
        return "<p class='muted'>never fires on these tokens</p>"
    top = max(counts) or 1
    w = width / len(counts)
    bars = "".join(f"<rect x='{i * w:.1f}' y='{height - c / top * height:.1f}' width='{w - 1:.1f}' "
                   f"height='{c / top * height:.1f}'/>" for i, c in enumerate(counts))
    return (f"<svg width='{width}' height='{height + 14}' class='hist'>{bars}"
            f"<text x='0' y='{height + 12}'>{edges[0]:.2g}</text>"
            f"<text x='{width}' y='{height + 12}' text-anchor='end'>{edges[-1]:.2g}</text></svg>")


def _context_html(ctx: Context, scale: float) -> str:
    spans = []
    for k, (tok, act) in enumerate(zip(ctx.tokens, ctx.activations, strict=False)):
        alpha = max(0.0, min(1.0, act / scale)) if scale > 0 else 0.0
        cls = " class='peak'" if k == ctx.max_position else ""
        spans.append(f"<span{cls} style='background: rgba(255,120,0,{alpha:.2f})' title='{act:.3g}'>"
                     f"{html.escape(tok).replace(' ', '&nbsp;')}</span>")
    return "<div class='ctx'>" + "".join(spans) + "</div>"


def _logit_table(pairs: list[tuple[str, float]] | None) -> str:
    if pairs is None:
        return "<p class='muted'>not a residual-stream hook</p>"
    return "<table>" + "".join(f"<tr><td><code>{html.escape(repr(t))}</code></td><td>{v:+.3f}</td></tr>"
                               for t, v in pairs) + "</table>"


def render_html(dashboard: FeatureDashboard, title: str = "SAE feature dashboard") -> str:
    cards = []
    for c in dashboard.cards:
        contexts = "".join(_context_html(ctx, c.max_activation) for ctx in c.contexts)
        cards.append(
            f"<section><h2>latent {c.latent}</h2><p>fires on {c.firing_frequency:.3%} of tokens; "
            f"max activation {c.max_activation:.3g}</p><div class='cols'><div><h3>top activations</h3>{contexts}</div>"
            f"<div><h3>activation histogram</h3>{_svg_histogram(c.histogram_counts, c.histogram_edges)}"
            f"<h3>promoted tokens</h3>{_logit_table(c.top_logits)}<h3>suppressed tokens</h3>"
            f"{_logit_table(c.bottom_logits)}</div></div></section>")
    style = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}section{border-top:1px solid #ccc;"
             "padding:.5em 0}.cols{display:flex;gap:2em}.ctx{font-family:monospace;margin:2px 0;white-space:nowrap}"
             ".peak{outline:1px solid #333}.muted{color:#888}.hist rect{fill:#f80}.hist text{font-size:10px}"
             "table{font-size:12px}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p>hook <code>{html.escape(dashboard.hook_name)}</code></p>{''.join(cards)}</body></html>")
