"""Attention motifs: head detectors (layer x head scores), the ICL score and an HTML pattern viewer.

    from mechscope.attention import head_report
    report = head_report(model)          # previous-token, duplicate, induction, lookback, lagged-induction, copying
"""

from mechscope.attention.detectors import (
                                           CopyingScores,
                                           HeadScores,
                                           attention_patterns,
                                           copying_scores,
                                           duplicate_token_scores,
                                           induction_scores,
                                           lagged_induction_scores,
                                           lookback_scores,
                                           previous_token_scores,
)
from mechscope.attention.icl import (
    ICLScore,
    RepeatLoss,
    icl_score,
    per_token_loss,
    repeat_loss,
    repeat_loss_with_heads_ablated,
)
from mechscope.attention.name_movers import NameMoverScores, name_mover_scores
from mechscope.attention.report import HeadReport, head_report
from mechscope.attention.viewer import attention_html, save_attention_html

__all__ = ["CopyingScores", "HeadReport", "HeadScores", "ICLScore", "NameMoverScores", "RepeatLoss",
           "attention_html", "attention_patterns", "copying_scores", "duplicate_token_scores", "head_report",
           "icl_score", "induction_scores", "lagged_induction_scores", "lookback_scores", "name_mover_scores",
           "per_token_loss", "previous_token_scores", "repeat_loss", "repeat_loss_with_heads_ablated",
           "save_attention_html"]
