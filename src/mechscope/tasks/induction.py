"""Induction: sequences of random tokens repeated, so the second copy is predictable by copying.

``repeated_tokens`` gives the raw sequences the head detectors read ([BOS] r_1..r_n r_1..r_n);
``induction_task`` gives a patching task: the prompt ends inside the second copy, the answer is
the next token of the first copy, and the corrupt prompt changes that one token in the first copy
(so the answer's information has to move from the first copy to the end).
"""

from __future__ import annotations

import dataclasses
import re

import torch

from mechscope.errors import InputError
from mechscope.tasks.base import Task

_BYTE_TOKEN = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")


def random_token_pool(model) -> torch.Tensor:
    """Ids a random sequence may use: every token but special and byte-fallback tokens. [n_ids]"""
    tok = model.tokenizer
    special = set(getattr(tok, "all_special_ids", []) or [])
    vocab = min(len(tok), model.cfg.d_vocab)
    pieces = tok.convert_ids_to_tokens(list(range(vocab)))
    keep = [i for i, p in enumerate(pieces) if i not in special and p is not None and not _BYTE_TOKEN.match(p)]
    return torch.tensor(keep, dtype=torch.long)


def bos_prefix(model) -> list[int]:
    """[bos_id] when the model's tokenizer has a BOS token, else []."""
    bos = getattr(model.tokenizer, "bos_token_id", None)
    return [] if bos is None else [int(bos)]


@dataclasses.dataclass
class RepeatedTokens:
    """tokens: [n_seq, prefix + 2 * half_len]; the first copy starts at `start`, the second at
    `start + half_len`. Tokens inside one copy are distinct."""

    tokens: torch.Tensor
    half_len: int
    start: int

    @property
    def second_copy(self) -> slice:
        return slice(self.start + self.half_len, self.start + 2 * self.half_len)


def next_token_loss(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of predicting token t+1 at each position t (fp32): logits [batch pos vocab],
    tokens [batch pos] -> [batch pos-1]."""
    logp = logits[:, :-1].float().log_softmax(-1)
    return -logp.gather(-1, tokens[:, 1:, None].to(logp.device))[..., 0]


def copy_losses(loss: torch.Tensor, start: int, half_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The losses on the first and on the second copy of a repeated span that starts at `start`:
    loss [... pos-1] from `next_token_loss` -> two [... half_len-1] slices, predicting tokens 2..n of
    each copy (the first token of a copy is unpredictable). The induction copy loss is their ratio
    or difference."""
    # the loss at position t predicts token t+1
    return loss[..., start:start + half_len - 1], loss[..., start + half_len:start + 2 * half_len - 1]


def repeated_tokens(model, n_seq: int = 16, half_len: int = 20, seed: int = 0) -> RepeatedTokens:
    """[BOS] r_1..r_n r_1..r_n with r drawn without replacement from `random_token_pool`."""
    pool = random_token_pool(model)
    if half_len < 2 or len(pool) < half_len:
        raise InputError(f"half_len must be in [2, {len(pool)}] for this vocabulary, got {half_len}")
    prefix = bos_prefix(model)
    if len(prefix) + 2 * half_len > model.cfg.n_ctx:
        raise InputError(f"2 * half_len + BOS = {len(prefix) + 2 * half_len} exceeds the context "
                         f"({model.cfg.n_ctx}); use half_len <= {(model.cfg.n_ctx - len(prefix)) // 2}")
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(n_seq):
        half = pool[torch.randperm(len(pool), generator=gen)[:half_len]]
        rows.append(torch.cat([torch.tensor(prefix, dtype=torch.long), half, half]))
    return RepeatedTokens(tokens=torch.stack(rows), half_len=half_len, start=len(prefix))


def induction_task(model, n_prompts: int = 16, half_len: int = 12, seed: int = 0,
                   metric: str = "logit_diff") -> Task:
    """Clean: [BOS] r_1..r_{n+1} r_1..r_{n-1} -> r_n. Corrupt: r_n in the first copy replaced by
    r' (a token not in the sequence) -> r'. n = half_len. positions: "copied" (where r_n sits in the first copy),
    "END" (the last position)."""
    rep = repeated_tokens(model, n_prompts, half_len + 1, seed)
    pool = random_token_pool(model)
    gen = torch.Generator().manual_seed(seed + 1)
    clean = rep.tokens[:, :-2].clone()        # drop the last two so the prompt ends at r_{n-1}
    # The first copy is r_1..r_{n+1}; the prompt's second copy is r_1..r_{n-1}; answer r_n.
    n = half_len
    copied = rep.start + n - 1
    answers = clean[:, copied].clone()
    corrupt = clean.clone()
    wrongs = []
    for i in range(n_prompts):
        used = set(clean[i].tolist())
        while True:
            cand = int(pool[torch.randint(len(pool), (1,), generator=gen)])
            if cand not in used:
                break
        corrupt[i, copied] = cand
        wrongs.append(cand)
    end = clean.shape[1] - 1
    return Task(
        name="induction", clean_tokens=clean, corrupt_tokens=corrupt, answer_ids=answers,
        wrong_ids=torch.tensor(wrongs), metric=metric,
        clean_prompts=[model.to_string(t) for t in clean], corrupt_prompts=[model.to_string(t) for t in corrupt],
        positions={"copied": torch.full((n_prompts,), copied), "END": torch.full((n_prompts,), end)},
        description="repeated random tokens; the answer is copied from the first copy")
