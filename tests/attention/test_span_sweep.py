"""The span sweep against the head detectors and repeat loss, row by row (each row its own start)."""

from __future__ import annotations

import torch

from mechscope.attention.detectors import duplicate_token_scores, induction_scores
from mechscope.attention.icl import repeat_loss
from mechscope.attention.span_sweep import induction_sweep, span_rows
from mechscope.tasks.induction import RepeatedTokens


def test_rows_start_at_random_positions_and_repeat_their_span(tiny_gpt2_model):
    rows = span_rows(tiny_gpt2_model, 12, span=6, max_prefix=9, seed=3)
    assert rows.tokens.shape == (12, 1 + 9 + 12)
    assert len(set(rows.starts.tolist())) > 3           # the copy does not sit at one absolute position
    for row, start in zip(rows.tokens, rows.starts.tolist(), strict=True):
        assert torch.equal(row[start:start + 6], row[start + 6:start + 12])
        assert len(set(row[start:start + 6].tolist())) == 6


def test_sweep_matches_the_detectors_and_repeat_loss_row_by_row(tiny_gpt2_model):
    model = tiny_gpt2_model
    sweep = induction_sweep(model, spans=(8,), n_rows=5, max_prefix=6, n_candidates=2, seed=1)
    rows = span_rows(model, 5, 8, 6, seed=1)             # the same rows (seed + span index 0)
    induction, duplicate, first, second = [], [], [], []
    for row, start in zip(rows.tokens, rows.starts.tolist(), strict=True):
        rep = RepeatedTokens(tokens=row[None], half_len=8, start=start)
        induction.append(induction_scores(model, rep).scores)
        duplicate.append(duplicate_token_scores(model, rep).scores)
        loss = repeat_loss(model, rep)
        first.append(loss.first_copy_loss)
        second.append(loss.second_copy_loss)
    torch.testing.assert_close(sweep.lag_scores[0, 1], torch.stack(induction).mean(0), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(sweep.lag_scores[0, 0], torch.stack(duplicate).mean(0), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(sweep.first_loss[0], torch.tensor(first), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(sweep.second_loss[0], torch.tensor(second), rtol=1e-4, atol=1e-5)
    assert len(sweep.candidates) == 2 and len(sweep.ablation_share) == 2
