"""All pattern and weight detectors on one set of repeated random-token sequences."""

from __future__ import annotations

import dataclasses

from mechscope.attention.detectors import (
    HeadScores,
    attention_patterns,
    copying_scores,
    duplicate_token_scores,
    induction_scores,
    lagged_induction_scores,
    lookback_scores,
    previous_token_scores,
)
from mechscope.attention.icl import ICLScore, RepeatLoss, icl_score, per_token_loss, repeat_loss
from mechscope.results import Result
from mechscope.tasks.induction import repeated_tokens


@dataclasses.dataclass
class HeadReport(Result):
    """scores: detector name -> HeadScores [n_layers n_heads]; repeat: loss on the two copies;
    icl: late-minus-early loss on the same sequences."""

    scores: dict[str, HeadScores]
    repeat: RepeatLoss
    icl: ICLScore
    n_sequences: int
    half_len: int

    def top(self, k: int = 3) -> dict[str, list[tuple[int, int, float]]]:
        return {name: s.top(k) for name, s in self.scores.items()}

    def figure(self):
        from plotly.subplots import make_subplots

        names = list(self.scores)
        fig = make_subplots(rows=1, cols=len(names), subplot_titles=names)
        for i, name in enumerate(names, start=1):
            trace = self.scores[name].figure().data[0]
            trace.update(showscale=i == len(names), zmin=-1 if name == "copying" else 0, zmax=1)
            fig.add_trace(trace, row=1, col=i)
            fig.update_xaxes(title_text="head", row=1, col=i)
        fig.update_yaxes(title_text="layer", row=1, col=1)
        fig.update_layout(title="head detectors (layer x head)")
        return fig


def head_report(model, n_sequences: int = 16, half_len: int = 24, seed: int = 0,
                copying_tokens: int = 200) -> HeadReport:
    """Previous-token, duplicate-token, induction, lookback, lagged-induction and copying scores, plus
    the repeat loss and the in-context-learning score on [BOS] r r sequences."""
    half_len = min(half_len, (model.cfg.n_ctx - 1) // 2)
    rep = repeated_tokens(model, n_sequences, half_len, seed)
    patterns = attention_patterns(model, rep.tokens)
    scores = {
        "previous-token": previous_token_scores(model, patterns=patterns),
        "duplicate-token": duplicate_token_scores(model, rep, patterns=patterns),
        "induction": induction_scores(model, rep, patterns=patterns),
        "lookback": lookback_scores(model, patterns=patterns),
        "lagged-induction": lagged_induction_scores(model, rep, patterns=patterns),
        "copying": copying_scores(model, copying_tokens, seed).as_head_scores(),
    }
    del patterns
    loss = per_token_loss(model, rep.tokens)
    return HeadReport(scores=scores, repeat=repeat_loss(model, rep, loss),
                      icl=icl_score(model, rep.tokens, loss=loss), n_sequences=n_sequences,
                      half_len=half_len)


