"""Natural-text token batches for measurements that read a model on ordinary text.

The default source is a small public-domain sample shipped in the package (see texts/README.md),
so every analysis runs offline. `source` takes paths to .txt or .txt.gz files instead.

Anything trained on text and then scored on text draws its two sets from disjoint parts of the
stream (`split="train"`: the first 1 - HELD_OUT_SHARE of the tokens; `split="held_out"`: the rest).
Windows drawn at random from the whole stream with two seeds overlap: on the bundled sample (62k GPT-2
tokens), C16's quick training windows covered 4% of its held-out tokens, C20's 6% and C16's full ones
24%, so a fine-tune of thousands of steps was scored partly on its own training text.
"""

from __future__ import annotations

import functools
import gzip
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Literal

import torch

from mechscope.errors import InputError

BUNDLED = Path(__file__).with_name("texts") / "public_domain_sample.txt"
Source = None | str | os.PathLike | Sequence[str | os.PathLike]
Split = Literal["all", "train", "held_out"]
HELD_OUT_SHARE = 0.2   # the last fifth of the token stream is held out from anything trained on text


def read_text(source: Source = None) -> str:
    """The text of `source` (paths, .gz allowed) or of the bundled sample when None."""
    if source is None:
        paths = [BUNDLED]
    elif isinstance(source, (str, os.PathLike)):
        paths = [Path(source)]
    else:
        paths = [Path(p) for p in source]
    parts = []
    for path in paths:
        if not path.exists():
            raise InputError(f"text file {path} does not exist")
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as f:
            parts.append(f.read())
    return "\n\n".join(parts)


@functools.lru_cache(maxsize=8)
def _token_stream(tokenizer, key: tuple) -> torch.Tensor:
    text = read_text(None if key == ("<bundled>",) else list(key))
    return torch.tensor(tokenizer.encode(text, add_special_tokens=False, verbose=False), dtype=torch.long)


def token_stream(model, source: Source = None) -> torch.Tensor:
    """The whole source tokenized once (cached per tokenizer and source): [n_tokens]."""
    if source is None:
        key = ("<bundled>",)
    elif isinstance(source, (str, os.PathLike)):
        key = (str(source),)
    else:
        key = tuple(str(p) for p in source)
    return _token_stream(model.tokenizer, key)


def split_stream(stream: torch.Tensor, split: Split) -> torch.Tensor:
    """The part of a token stream that `split` draws from: all of it, the first 1 - HELD_OUT_SHARE of it
    ("train"), or the last HELD_OUT_SHARE ("held_out"): [n_tokens]."""
    if split == "all":
        return stream
    cut = int(round(len(stream) * (1 - HELD_OUT_SHARE)))
    if split == "train":
        return stream[:cut]
    if split == "held_out":
        return stream[cut:]
    raise InputError(f"unknown text split {split!r}: use 'all', 'train' or 'held_out'")


def eval_tokens(model, seq_len: int = 64, n_sequences: int = 16, seed: int = 0,
                source: Source = None, split: Split = "all") -> torch.Tensor:
    """`n_sequences` random windows of the text (of its `split`), BOS first when the model has one:
    [n_sequences seq_len]."""
    if seq_len > model.cfg.n_ctx:
        raise InputError(f"seq_len {seq_len} exceeds the model's context {model.cfg.n_ctx}")
    stream = split_stream(token_stream(model, source), split)
    bos = model.bos_token_id
    body = seq_len - (1 if bos is not None else 0)
    if len(stream) < body + 1:
        part = "the text" if split == "all" else f"the text's {split} part"
        raise InputError(f"{part} has {len(stream)} tokens, fewer than one sequence of {seq_len}: "
                         "pass a longer text or a shorter seq_len")
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(stream) - body, (n_sequences,), generator=g)
    rows = torch.stack([stream[s: s + body] for s in starts.tolist()])
    if bos is not None:
        rows = torch.cat([torch.full((n_sequences, 1), bos, dtype=torch.long), rows], dim=1)
    return rows.to(model.device)


def eval_token_batches(model, seq_len: int = 64, n_sequences: int = 16, batch_size: int = 8, seed: int = 0,
                       source: Source = None, split: Split = "all") -> Iterator[torch.Tensor]:
    """`eval_tokens` in batches of `batch_size`: yields [batch seq_len]."""
    tokens = eval_tokens(model, seq_len, n_sequences, seed, source, split)
    yield from tokens.split(batch_size)


def token_batches(tokens: torch.Tensor | Iterable[torch.Tensor], batch_size: int = 8) -> Iterator[torch.Tensor]:
    """Yield LongTensor batches [batch pos] from one [n pos] tensor or pass an iterable through."""
    if isinstance(tokens, torch.Tensor):
        if tokens.ndim == 1:
            tokens = tokens[None]
        for start in range(0, len(tokens), batch_size):
            yield tokens[start:start + batch_size]
    else:
        yield from tokens
