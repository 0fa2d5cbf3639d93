"""Training and held-out text come from disjoint parts of the stream (mechscope.data.text)."""

from __future__ import annotations

import pytest

from mechscope.data.text import HELD_OUT_SHARE, eval_tokens, split_stream, token_stream
from mechscope.errors import InputError


def _windows(tokens, bos: bool) -> set[tuple[int, ...]]:
    """Every 8-gram inside the windows (BOS dropped): a window drawn from the other part shares none."""
    rows = tokens[:, 1:] if bos else tokens
    return {tuple(row[i:i + 8].tolist()) for row in rows for i in range(row.shape[0] - 7)}


def test_train_and_held_out_windows_share_no_text(tiny_gpt2_model):
    m = tiny_gpt2_model
    stream = token_stream(m)
    train, held = split_stream(stream, "train"), split_stream(stream, "held_out")
    assert len(train) + len(held) == len(stream)
    assert abs(len(held) / len(stream) - HELD_OUT_SHARE) < 1e-3
    bos = m.bos_token_id is not None
    a = _windows(eval_tokens(m, seq_len=64, n_sequences=256, seed=1, split="train"), bos)
    b = _windows(eval_tokens(m, seq_len=64, n_sequences=256, seed=0, split="held_out"), bos)
    seam = {tuple(stream[i:i + 8].tolist()) for i in range(len(train) - 7, len(train))}  # 8-grams across the cut
    assert not (a & b) - seam
    whole = _windows(eval_tokens(m, seq_len=64, n_sequences=256, seed=1), bos)
    assert whole & b       # without the split, windows drawn with two seeds overlap


def test_a_split_too_short_and_an_unknown_split_are_named(tiny_gpt2_model, tmp_path):
    text = tmp_path / "short.txt"
    text.write_text("one two three four five six seven eight nine ten " * 8)
    n = len(token_stream(tiny_gpt2_model, str(text)))
    with pytest.raises(InputError, match="held_out part has"):
        eval_tokens(tiny_gpt2_model, seq_len=n // 2, n_sequences=1, source=str(text), split="held_out")
    assert eval_tokens(tiny_gpt2_model, seq_len=n // 2, n_sequences=1, source=str(text), split="train").shape[1] == n // 2
    with pytest.raises(InputError, match="unknown text split 'test'"):
        eval_tokens(tiny_gpt2_model, split="test")
