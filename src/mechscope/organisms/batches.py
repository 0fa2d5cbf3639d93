"""Training batches: every builder is a pure function of (seed, step), so a resumed run sees the
same batches as an uninterrupted one.

Three ways to lay the corpus out in rows (`Preset.packing`):
- ``"chunks"``: fixed seq_len slices of the token stream, documents cut anywhere;
- ``"row-per-document"``: one document per row, right-padded to the widest row of the batch;
- ``"documents"``: whole documents packed into seq_len rows, each with positions restarting at 0
  and attention kept inside it (HF's packed-sequence format: `position_ids` that restart, no
  `attention_mask`). Row-per-document wastes most of a batch on padding when documents are short
  (30 tokens on average in the organism corpus, 35% of a batch real); packed rows are ~95% real.

Repeated random spans for induction come as padded rows (`induction_batch`) or packed rows
(`packed_induction_rows`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from mechscope.errors import InputError

IGNORE = -100  # label of positions that are not scored


def batch_for_step(tokens: np.ndarray, step: int, batch_size: int, seq_len: int, seed: int) -> torch.Tensor:
    """The [batch, seq_len] input ids of step `step`: a pure function of its arguments."""
    n_chunks = len(tokens) // seq_len
    if n_chunks < batch_size:
        raise InputError(f"corpus has {len(tokens)} tokens, fewer than one batch of "
                         f"{batch_size}x{seq_len}; raise train_tokens")
    per_epoch = n_chunks // batch_size
    epoch, k = divmod(step, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(n_chunks)[k * batch_size:(k + 1) * batch_size]
    idx = order[:, None] * seq_len + np.arange(seq_len)[None]
    return torch.from_numpy(tokens[idx].astype(np.int64))


def document_bounds(tokens: np.ndarray, eos: int) -> np.ndarray:
    """[n_docs, 2] (start, end) of each document in the stream; each starts with its <|endoftext|>."""
    starts = np.flatnonzero(tokens == eos)
    ends = np.append(starts[1:], len(tokens))
    return np.stack([starts, ends], axis=1)


def document_batch(tokens: np.ndarray, bounds: np.ndarray, step: int, batch_size: int, seq_len: int,
                   seed: int, eos: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One document per row (truncated to seq_len), right-padded: (input_ids, labels, attention_mask).

    A pure function of its arguments. Padding has label IGNORE and mask 0.
    """
    per_epoch = len(bounds) // batch_size
    epoch, k = divmod(step, per_epoch)
    picked = np.random.default_rng([seed, epoch]).permutation(len(bounds))[k * batch_size:(k + 1) * batch_size]
    docs = [tokens[a:min(b, a + seq_len)].astype(np.int64) for a, b in bounds[picked]]
    width = max(len(d) for d in docs)
    x = torch.full((len(docs), width), eos, dtype=torch.long)
    mask = torch.zeros((len(docs), width), dtype=torch.long)
    for i, d in enumerate(docs):
        x[i, :len(d)] = torch.from_numpy(d)
        mask[i, :len(d)] = 1
    return x, x.masked_fill(mask == 0, IGNORE), mask


def induction_batch(step: int, batch_size: int, vocab_size: int, seed: int, eos: int,
                    stream: int = 7, max_prefix: int = 0, min_span: int = 8, max_span: int = 20
                    ) -> tuple[torch.Tensor, int]:
    """Rows of <|endoftext|> + P random tokens + a random span + the same span, and P.

    Returns ([batch, 1 + P + 2 * span] ids, P). P is drawn per step from 0..max_prefix: with the
    span always right after <|endoftext|> a model can predict the copy from absolute positions alone
    (attend to position i - span + 1) instead of forming induction heads; a random offset rules
    that shortcut out. The span length is drawn per step from min_span..max_span. A pure function of its
    arguments; `stream` separates warm-up rows from the rows mixed into later batches.
    """
    rng = np.random.default_rng([seed, step, stream])
    span = rng.integers(1, vocab_size, size=(batch_size, int(rng.integers(min_span, max_span + 1))))
    n_prefix = int(rng.integers(0, max_prefix + 1)) if max_prefix else 0
    prefix = rng.integers(1, vocab_size, size=(batch_size, n_prefix))
    x = np.concatenate([np.full((batch_size, 1), eos), prefix, span, span], axis=1)
    return torch.from_numpy(x.astype(np.int64)), n_prefix


def induction_labels(x: torch.Tensor, mask_first_copy: bool, n_prefix: int = 0) -> torch.Tensor:
    """Labels for `induction_batch` rows; with `mask_first_copy` only the second copy is scored.

    Everything before the second copy is unpredictable noise (loss ln(vocab) at best); leaving it
    out of the loss leaves only the signal that builds the induction circuit.
    """
    if not mask_first_copy:
        return x
    span = (x.shape[1] - 1 - n_prefix) // 2
    labels = x.clone()
    labels[:, :1 + n_prefix + span] = IGNORE
    return labels


def join_rows(parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], pad: int
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stack (input_ids, labels, attention_mask) row groups of different widths, right-padding."""
    width = max(x.shape[1] for x, _, _ in parts)
    out = []
    for x, labels, mask in parts:
        extra = width - x.shape[1]
        out.append((F.pad(x, (0, extra), value=pad), F.pad(labels, (0, extra), value=IGNORE),
                    F.pad(mask, (0, extra), value=0)))
    return tuple(torch.cat(group) for group in zip(*out, strict=True))


def pack_rows(rows: list[list[tuple[np.ndarray, np.ndarray]]], seq_len: int, pad: int
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Lay out packed rows: each row is a list of (ids, labels) segments that fit in seq_len.

    Returns (input_ids, labels, position_ids), each [len(rows), seq_len]. Positions restart at 0 in
    every segment, so HF masks attention to stay inside it; the padding at the end of a row is one
    more segment, unscored.
    """
    n = len(rows)
    x = np.full((n, seq_len), pad, dtype=np.int64)
    labels = np.full((n, seq_len), IGNORE, dtype=np.int64)
    positions = np.zeros((n, seq_len), dtype=np.int64)
    for r, segments in enumerate(rows):
        at = 0
        for ids, seg_labels in segments:
            x[r, at:at + len(ids)] = ids
            labels[r, at:at + len(ids)] = seg_labels
            positions[r, at:at + len(ids)] = np.arange(len(ids))
            at += len(ids)
        positions[r, at:] = np.arange(seq_len - at)
    return torch.from_numpy(x), torch.from_numpy(labels), torch.from_numpy(positions)


def greedy_rows(lengths: np.ndarray, seq_len: int) -> np.ndarray:
    """Row index of each segment when segments are placed in order, a new row when one does not fit."""
    row = np.empty(len(lengths), dtype=np.int64)
    r, used = 0, 0
    for i, n in enumerate(lengths.tolist()):
        if used + n > seq_len:
            r, used = r + 1, 0
        row[i] = r
        used += n
    return row


class PackedDocuments:
    """Whole documents packed into seq_len rows, reshuffled every epoch.

    Epoch e visits the documents in a permutation seeded by (seed, e), packs them greedily in that
    order (documents longer than seq_len are truncated) and deals the rows out batch_size at a
    time; `batch(step)` is therefore a pure function of (seed, step).
    """

    def __init__(self, tokens: np.ndarray, bounds: np.ndarray, batch_size: int, seq_len: int, seed: int,
                 pad: int):
        self.tokens, self.bounds = tokens, bounds
        self.batch_size, self.seq_len, self.seed, self.pad = batch_size, seq_len, seed, pad
        self.lengths = np.minimum(bounds[:, 1] - bounds[:, 0], seq_len)
        self._epoch: tuple[int, np.ndarray, np.ndarray] | None = None
        self._steps_per_epoch: int | None = None

    def _plan(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(documents in visiting order, first index into it of each row) for `epoch`; the last epoch's
        plan is kept, so each is computed once."""
        if self._epoch is None or self._epoch[0] != epoch:
            order = np.random.default_rng([self.seed, epoch]).permutation(len(self.bounds))
            rows = greedy_rows(self.lengths[order], self.seq_len)
            starts = np.searchsorted(rows, np.arange(rows[-1] + 2))
            if rows[-1] + 1 < self.batch_size:
                raise InputError(f"corpus packs into {rows[-1] + 1} rows, fewer than one batch of "
                                 f"{self.batch_size}; raise train_tokens")
            self._epoch = (epoch, order, starts)
        return self._epoch[1], self._epoch[2]

    def steps_per_epoch(self) -> int:
        """Whole batches in epoch 0's packing; every epoch is this many steps."""
        if self._steps_per_epoch is None:
            self._steps_per_epoch = (len(self._plan(0)[1]) - 1) // self.batch_size
        return self._steps_per_epoch

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(input_ids, labels, position_ids) of `step`, each [batch_size, seq_len].

        Another epoch's permutation can pack into a few rows fewer than epoch 0's; a step past its
        last row takes rows from the start of that epoch again.
        """
        epoch, k = divmod(step, self.steps_per_epoch())
        order, starts = self._plan(epoch)
        n_rows = len(starts) - 1
        rows = []
        for r in range(k * self.batch_size, (k + 1) * self.batch_size):
            segments = []
            for doc in order[starts[r % n_rows]:starts[r % n_rows + 1]]:
                a = self.bounds[doc, 0]
                ids = self.tokens[a:a + self.lengths[doc]].astype(np.int64)
                segments.append((ids, ids))
            rows.append(segments)
        return pack_rows(rows, self.seq_len, self.pad)


def packed_induction_rows(step: int, n_rows: int, seq_len: int, vocab_size: int, seed: int, eos: int,
                          max_prefix: int, mask_first_copy: bool, min_span: int = 8, max_span: int = 20,
                          stream: int = 9) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows packed with segments <|endoftext|> + P random tokens + a random span + the same span.

    Each segment draws its own span length (min_span..max_span) and prefix length P (0..max_prefix),
    so neither absolute position nor the distance to <|endoftext|> predicts the copy. A circuit that
    keys on the token k back and copies the one k - 1 back (induction-2l: k = 5) predicts every token
    of a second copy exactly when the span is longer than k, as well as the textbook lag-1 circuit;
    only spans of k or fewer tokens tell them apart. induction-2l never saw one: its corpus family
    "induction" (40% of its tokens) repeats spans of 8-30 and these rows had spans of 8-20; its
    shipped weights copy spans of 6 or more (second/first-copy loss 0.18 at 6, 0.014 at 20) and
    none of 2-4 (1.0). Spans from `min_span` = 1 or 2 leave lag 1 the only circuit that copies every
    repeat. With `mask_first_copy` only the second copy is scored. A pure function of its arguments.
    Returns (input_ids, labels, position_ids), each [n_rows, seq_len].
    """
    if not 1 <= min_span <= max_span:
        raise InputError(f"induction spans need 1 <= min_span <= max_span, got {min_span}..{max_span}")
    if seq_len < 1 + max_prefix + 2 * max_span:
        raise InputError(f"seq_len {seq_len} is too short for induction segments with a prefix of up to "
                         f"{max_prefix} and spans of up to {max_span}; need at least {1 + max_prefix + 2 * max_span}")
    rng = np.random.default_rng([seed, step, stream])
    rows = []
    for _ in range(n_rows):
        segments, used = [], 0
        while True:
            span = rng.integers(1, vocab_size, size=int(rng.integers(min_span, max_span + 1)))
            prefix = rng.integers(1, vocab_size, size=int(rng.integers(0, max_prefix + 1)))
            ids = np.concatenate([[eos], prefix, span, span]).astype(np.int64)
            if used + len(ids) > seq_len:
                break
            labels = ids.copy()
            if mask_first_copy:
                labels[:1 + len(prefix) + len(span)] = IGNORE
            segments.append((ids, labels))
            used += len(ids)
        rows.append(segments)
    return pack_rows(rows, seq_len, eos)
