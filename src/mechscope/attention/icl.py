"""In-context learning score (Olsson et al. 2022): loss late in the context minus loss early.

A model that uses its context predicts later tokens better, so the score is negative. Olsson et
al. compare token 500 with token 50; on shorter contexts we compare the mean loss in a window
around `late` with a window around `early` (defaults: 10% and the last position). On repeated
random tokens the loss on the second copy versus the first copy is the sharpest version of this.
"""

from __future__ import annotations

import dataclasses

import torch

from mechscope.errors import InputError
from mechscope.model.interventions import mean_ablate
from mechscope.results import Result
from mechscope.tasks.induction import RepeatedTokens, copy_losses, next_token_loss


def per_token_loss(model, tokens: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    """Cross-entropy of predicting token t+1 at each position t: [batch pos-1]."""
    out = []
    with torch.no_grad():
        for i in range(0, tokens.shape[0], batch_size):
            chunk = tokens[i:i + batch_size].to(model.device)
            out.append(next_token_loss(model(chunk), chunk).cpu())
    return torch.cat(out)


@dataclasses.dataclass
class ICLScore(Result):
    """loss_by_position: [pos-1] mean loss predicting token t+1 at position t."""

    score: float
    early_loss: float
    late_loss: float
    early: int
    late: int
    loss_by_position: torch.Tensor

    def figure(self):
        import plotly.graph_objects as go

        fig = go.Figure(go.Scatter(y=self.loss_by_position.tolist(), mode="lines"))
        fig.update_layout(title=f"loss by position (ICL score {self.score:.3f})", xaxis_title="position",
                          yaxis_title="loss (nats)")
        return fig


def icl_score(model, tokens: torch.Tensor, early: int | None = None, late: int | None = None,
              window: int = 2, loss: torch.Tensor | None = None) -> ICLScore:
    """tokens: [batch pos] text (or any sequences). score = loss(late) - loss(early).
    loss: precomputed per_token_loss(model, tokens) [batch pos-1], to avoid a second forward."""
    loss = (per_token_loss(model, tokens) if loss is None else loss).mean(0)
    n = loss.shape[0]
    if n < 4:
        raise InputError("the ICL score needs sequences of at least 5 tokens")
    early = max(window, n // 10) if early is None else early
    late = n - 1 - window if late is None else late
    if not 0 <= early < late < n:
        raise InputError(f"need 0 <= early < late < {n}; got early={early}, late={late}")

    def around(p):
        return loss[max(0, p - window): p + window + 1].mean().item()

    e, la = around(early), around(late)
    return ICLScore(score=la - e, early_loss=e, late_loss=la, early=early, late=late, loss_by_position=loss)


@dataclasses.dataclass
class RepeatLoss(Result):
    """Loss on the first and on the second copy of repeated random tokens."""

    first_copy_loss: float
    second_copy_loss: float
    loss_by_position: torch.Tensor

    @property
    def drop(self) -> float:
        return self.first_copy_loss - self.second_copy_loss

    def to_dict(self):
        return super().to_dict() | {"drop": self.drop}

    def figure(self):
        import plotly.graph_objects as go

        fig = go.Figure(go.Scatter(y=self.loss_by_position.tolist(), mode="lines"))
        fig.update_layout(title=f"loss on repeated random tokens (drop {self.drop:.2f} nats)",
                          xaxis_title="position", yaxis_title="loss (nats)")
        return fig


def repeat_loss(model, rep: RepeatedTokens, loss: torch.Tensor | None = None) -> RepeatLoss:
    """Mean loss predicting tokens 2..n of each copy (the first token of a copy is unpredictable)."""
    loss = per_token_loss(model, rep.tokens) if loss is None else loss
    by_pos = loss.mean(0)
    first, second = copy_losses(by_pos, rep.start, rep.half_len)
    return RepeatLoss(first_copy_loss=first.mean().item(), second_copy_loss=second.mean().item(),
                      loss_by_position=by_pos)


def repeat_loss_with_heads_ablated(model, rep: RepeatedTokens, heads: list[tuple[int, int]]) -> RepeatLoss:
    """`repeat_loss` with each (layer, head) mean-ablated: its hook_z replaced, per position, by its
    mean over the same sequences."""
    names = sorted({f"blocks.{layer}.attn.hook_z" for layer, _ in heads})
    with torch.no_grad():
        _, cache = model.run_with_cache(rep.tokens.to(model.device), names=names)
    hooks = {}
    for name in names:
        layer = int(name.split(".")[1])
        picked = [h for at, h in heads if at == layer]
        hooks[name] = mean_ablate(cache[name].mean(0), heads=picked)   # mean [pos head d_head]
    with model.hooks(fwd=hooks):
        return repeat_loss(model, rep, per_token_loss(model, rep.tokens))
