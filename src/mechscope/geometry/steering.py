"""Steering with a concept direction: add α·v to the residual stream and read the log-odds.

For a concept with pairs (y0_i, y1_i), the log-odds of the target over the base at the steered position is
mean_i [logit(y1_i) - logit(y0_i)] (= log P(y1)/P(y0), the softmax normaliser cancels). We add α·s·v̂ at
one hook and position (`mechscope.model.interventions.add_vector`), where v̂ is the unit direction and s the
mean norm of the activation there, so α is in units of the stream's own size; we report the change of the
log-odds against α for the steered concept (target) and for other concepts (off-target), and the slope
of each (least squares through the α grid).

Additivity error of two directions A, B (issue #18):
‖Δ(αA + βB) - Δ(αA) - Δ(βB)‖ / ‖Δ(αA + βB)‖ with Δ the change of the centred logit vector over the vocabulary
(centring removes the softmax-irrelevant constant), pooled over prompts. 0 for a model linear from the
hook to the logits.

Park et al.'s dual direction Cov(γ)⁻¹ γ̄_W (`CausalInnerProduct.dual`) is the one their theory says moves
the W log-odds while leaving causally separable concepts alone; `steering_direction` gives it or γ̄_W.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from mechscope.errors import InputError
from mechscope.geometry.concepts import causal_inner_product, concept_direction, word_vectors
from mechscope.geometry.word_pairs import ConceptPairs
from mechscope.model.interventions import add_vector
from mechscope.patching import forward_to_answer
from mechscope.results import Result

DEFAULT_PROMPTS = ("The", "Then the", "I saw the", "She gave him the", "They went to the", "He said that the",
                   "After the", "It was the")
DEFAULT_ALPHAS = (-1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0)


def steering_direction(model, pairs: ConceptPairs, kind: str = "causal") -> torch.Tensor:
    """[d] unit direction from the unembedding: "euclidean" γ̄_W, or "causal" Cov(γ)⁻¹ γ̄_W normalised."""
    gamma = word_vectors(model, "unembedding")
    direction, _ = concept_direction(gamma, pairs.base_ids, pairs.target_ids)
    if kind == "euclidean":
        return direction.float()
    if kind != "causal":
        raise InputError(f"unknown direction kind {kind!r}: use 'causal' or 'euclidean'")
    dual = causal_inner_product(gamma).dual(direction)
    return (dual / dual.norm()).float()


def prompt_batches(model, prompts: Sequence[str]) -> list[torch.Tensor]:
    """Token batches [b pos] of the prompts grouped by length (no padding)."""
    if not prompts:
        raise InputError("no prompts to steer: pass at least one")
    groups: dict[int, list[torch.Tensor]] = {}
    for p in prompts:
        t = model.to_tokens(p)[0]
        groups.setdefault(len(t), []).append(t)
    return [torch.stack(g) for g in groups.values()]


def pair_log_odds(logits: torch.Tensor, pairs: ConceptPairs) -> torch.Tensor:
    """[b] mean over pairs of logit(target) - logit(base), from logits [b V]."""
    return (logits[:, pairs.target_ids] - logits[:, pairs.base_ids]).mean(1)


def stream_scale(model, hook: str, batches: list[torch.Tensor], position: int = -1) -> float:
    """Mean norm of the activation at `hook`, `position` over the batches."""
    norms = []
    for tokens in batches:
        _, cache = model.run_with_cache(tokens, names=[hook])
        norms.append(cache[hook][:, position].float().norm(dim=-1))
    return float(torch.cat(norms).mean())


def steered_logits(model, batches: list[torch.Tensor], hook: str, vector: torch.Tensor | None,
                   position: int = -1) -> torch.Tensor:
    """[b V] logits at `position` with `vector` ([d], absolute size) added there at `hook` (None: no edit)."""
    out = []
    for tokens in batches:      # only `position` is unembedded: no [b pos d_vocab] head
        edit = {} if vector is None else {hook: add_vector(vector, positions=position)}
        with model.hooks(fwd=edit):
            out.append(forward_to_answer(model, tokens, [], position, grad=False)[0].float())
    return torch.cat(out)


@dataclasses.dataclass
class SteeringResult(Result):
    """Log-odds change against α for the steered concept and for others.

    alphas: [a] steering strengths (units of `scale`, the mean activation norm at the hook). target: [a] mean
    change of the concept's log-odds; off_target: name -> [a]. slope / off_slopes: least-squares slopes per
    unit α; selectivity: max |off slope| / |slope| (small is selective).
    """

    concept: str
    hook: str
    position: int
    kind: str
    scale: float
    alphas: list[float]
    target: list[float]
    off_target: dict[str, list[float]]
    slope: float
    off_slopes: dict[str, float]
    selectivity: float

    def figure(self):
        import plotly.graph_objects as go

        fig = go.Figure(go.Scatter(x=self.alphas, y=self.target, mode="lines+markers",
                                   name=f"{self.concept} (steered)", line={"width": 3}))
        for name, ys in self.off_target.items():
            fig.add_trace(go.Scatter(x=self.alphas, y=ys, mode="lines+markers", name=f"{name} (off-target)",
                                     line={"dash": "dot"}))
        fig.update_layout(title=f"steering {self.concept} ({self.kind} direction) at {self.hook}",
                          xaxis_title="α (× mean activation norm)", yaxis_title="Δ log-odds target vs base")
        return fig


def _slope(x: Sequence[float], y: Sequence[float]) -> float:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    x = x - x.mean()
    return float((x * (y - y.mean())).sum() / (x**2).sum())


def steer(model, direction: torch.Tensor, measure: ConceptPairs, *, hook: str | None = None,
          off_target: Mapping[str, ConceptPairs] | None = None, prompts: Sequence[str] = DEFAULT_PROMPTS,
          alphas: Sequence[float] = DEFAULT_ALPHAS, position: int = -1, kind: str = "given") -> SteeringResult:
    """Add α·scale·direction/‖direction‖ at `hook` (default: the last block's resid_post), `position`.

    direction: [d_model]. measure: the pairs whose log-odds are the target; off_target: other concepts.
    """
    hook = hook or f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"
    if hook not in model.hook_names():
        raise InputError(f"unknown hook {hook!r}; steer at a residual hook such as 'blocks.0.hook_resid_post'")
    if len(alphas) < 2:
        raise InputError("give at least two α values to read a slope")
    unit = (direction / direction.norm()).to(model.device)
    batches = prompt_batches(model, prompts)
    scale = stream_scale(model, hook, batches, position)
    base = steered_logits(model, batches, hook, None, position)
    off_target = dict(off_target or {})
    target, off = [], {k: [] for k in off_target}
    for alpha in alphas:
        logits = steered_logits(model, batches, hook, alpha * scale * unit, position)
        target.append(float((pair_log_odds(logits, measure) - pair_log_odds(base, measure)).mean()))
        for name, pairs in off_target.items():
            off[name].append(float((pair_log_odds(logits, pairs) - pair_log_odds(base, pairs)).mean()))
    slope = _slope(alphas, target)
    off_slopes = {k: _slope(alphas, v) for k, v in off.items()}
    worst = max((abs(v) for v in off_slopes.values()), default=0.0)
    return SteeringResult(concept=measure.name, hook=hook, position=position, kind=kind, scale=scale,
                          alphas=[float(a) for a in alphas], target=target, off_target=off, slope=slope,
                          off_slopes=off_slopes, selectivity=worst / abs(slope) if slope != 0 else float("inf"))


def additivity_error(model, a: torch.Tensor, b: torch.Tensor, *, alpha: float = 0.5, beta: float = 0.5,
                     hook: str | None = None, prompts: Sequence[str] = DEFAULT_PROMPTS, position: int = -1) -> float:
    """‖Δ(αA+βB) - Δ(αA) - Δ(βB)‖ / ‖Δ(αA+βB)‖ with A, B unit directions [d] scaled by the mean activation norm."""
    hook = hook or f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"
    batches = prompt_batches(model, prompts)
    scale = stream_scale(model, hook, batches, position)
    a = (a / a.norm()).to(model.device) * scale
    b = (b / b.norm()).to(model.device) * scale

    def delta(vector):
        logits = steered_logits(model, batches, hook, vector, position)
        return logits - logits.mean(-1, keepdim=True)

    base = delta(None)
    both = delta(alpha * a + beta * b) - base
    parts = (delta(alpha * a) - base) + (delta(beta * b) - base)
    return float((both - parts).norm() / both.norm().clamp_min(1e-12))
