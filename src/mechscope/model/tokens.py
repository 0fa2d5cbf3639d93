"""Tokenization helpers (mixin for HookedModel).

BOS rule, the same for every model: ``prepend_bos=None`` prepends the tokenizer's BOS token when it
has one (GPT-2: ``<|endoftext|>``; LLaMA: ``<s>``) and nothing when it has none. We encode without
the tokenizer's own special tokens and add BOS ourselves, so the rule does not depend on how a
tokenizer was configured. Batches of texts are right-padded; the attention mask marks real tokens.
"""

from __future__ import annotations

import dataclasses

import torch

from mechscope.errors import InputError


@dataclasses.dataclass
class TokenBatch:
    tokens: torch.Tensor          # [batch pos] long
    attention_mask: torch.Tensor  # [batch pos] long, 1 = real token


class Tokenization:
    """Mixin: needs self.tokenizer, self.cfg, self.device."""

    @property
    def bos_token_id(self) -> int | None:
        return self.tokenizer.bos_token_id

    def _pad_id(self) -> int:
        tok = self.tokenizer
        for candidate in (tok.pad_token_id, tok.eos_token_id, tok.bos_token_id):
            if candidate is not None:
                return candidate
        return 0

    def tokenize(self, text: str | list[str], *, prepend_bos: bool | None = None) -> TokenBatch:
        texts = [text] if isinstance(text, str) else list(text)
        if not texts:
            raise InputError("no text given: pass a string or a non-empty list of strings")
        if prepend_bos is None:
            prepend_bos = self.bos_token_id is not None
        if prepend_bos and self.bos_token_id is None:
            raise InputError("prepend_bos=True but this tokenizer has no BOS token; pass prepend_bos=False")
        ids = [self.tokenizer.encode(t, add_special_tokens=False) for t in texts]
        if prepend_bos:
            ids = [[self.bos_token_id, *x] for x in ids]
        width = max(len(x) for x in ids)
        if width == 0:
            raise InputError("the text tokenizes to nothing")
        tokens = torch.full((len(ids), width), self._pad_id(), dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for i, x in enumerate(ids):
            tokens[i, : len(x)] = torch.tensor(x, dtype=torch.long)
            mask[i, : len(x)] = 1
        return TokenBatch(tokens.to(self.device), mask.to(self.device))

    def to_tokens(self, text: str | list[str], *, prepend_bos: bool | None = None) -> torch.Tensor:
        """[batch pos] token ids (right-padded); see the module docstring for the BOS rule."""
        return self.tokenize(text, prepend_bos=prepend_bos).tokens

    def to_str_tokens(self, text_or_tokens, *, prepend_bos: bool | None = None) -> list[str]:
        """One string per token (decoded individually) of a text or a 1-D token tensor/list."""
        if isinstance(text_or_tokens, str):
            tokens = self.to_tokens(text_or_tokens, prepend_bos=prepend_bos)[0]
        else:
            tokens = torch.as_tensor(text_or_tokens)
            if tokens.dim() == 2:
                if tokens.shape[0] != 1:
                    raise InputError("to_str_tokens takes one sequence; index the batch first")
                tokens = tokens[0]
        return [self.tokenizer.decode([int(t)]) for t in tokens.tolist()]

    def to_string(self, tokens) -> str | list[str]:
        tokens = torch.as_tensor(tokens)
        if tokens.dim() == 2:
            return [self.tokenizer.decode(t.tolist()) for t in tokens]
        return self.tokenizer.decode(tokens.tolist())

    def to_single_token(self, text: str, *, what: str = "") -> int:
        """The id of a string that is exactly one token for this tokenizer; InputError otherwise
        (`what` names the string in the message, e.g. "answer")."""
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        if len(ids) != 1:
            raise InputError(f"{what + ' ' if what else ''}{text!r} is {len(ids)} tokens for this tokenizer "
                             f"({[self.tokenizer.decode([i]) for i in ids]}); it must be one token "
                             "(mind the leading space, e.g. ' Paris')")
        return ids[0]

    def is_single_token(self, text: str) -> bool:
        return len(self.tokenizer.encode(text, add_special_tokens=False)) == 1
