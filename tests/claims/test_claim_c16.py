"""C16's fine-tune length: sized by the budget and the model, never past MAX_TEXT_PASSES over the text."""

from __future__ import annotations

from mechscope.claims import c16_layernorm_removable as c16
from mechscope.claims.base import Budget


def test_full_fine_tunes_read_the_training_text_at_most_twice():
    full, quick = Budget.named("full"), Budget.named("quick")
    text = 50_000
    steps = c16.fine_tune_steps(1_000_000, full, text)
    assert steps < full.train_steps                                    # 2000 steps would read it ~40 times
    passes = steps * c16.batch_size(full) * full.seq_len / text
    assert c16.MAX_TEXT_PASSES - 0.05 < passes <= c16.MAX_TEXT_PASSES
    assert c16.fine_tune_steps(1_000_000, full, 10**9) == full.train_steps   # a long text: the budget's steps
    assert c16.fine_tune_steps(1_000_000, quick, text) == c16.QUICK_STEPS     # a small model: every quick step
    assert c16.fine_tune_steps(135_000_000, quick, text) == c16.MIN_QUICK_STEPS
    assert c16.fine_tune_steps(1_000_000, quick, 100) == 1                     # never zero steps
