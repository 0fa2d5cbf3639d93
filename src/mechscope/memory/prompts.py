"""Facts as prompts: where the subject sits in a prompt, and the one-token answer.

A `Fact` is a prompt with a named subject in it and a single-token target ("The color of the
blagri is", subject "blagri", target " gold"). Tracing restores states at the subject's tokens,
and ROME / MEMIT read the MLP key at the subject's last token, so both need the subject's token
span; `subject_span` finds it from character offsets, so a subject tokenized differently at the
start of a prompt and after a space is still found.
"""

from __future__ import annotations

import dataclasses

from mechscope.errors import InputError


@dataclasses.dataclass(frozen=True)
class Fact:
    """prompt: text ending right before the answer; subject: a substring of prompt; target: the
    answer as one token, leading space included (" gold"). paraphrases: other prompts asking the
    same fact (same subject); neighbours: (prompt, answer) facts about other subjects that an edit
    of this one should leave alone."""

    prompt: str
    subject: str
    target: str
    paraphrases: tuple[str, ...] = ()
    neighbours: tuple[tuple[str, str], ...] = ()


def encode(model, text: str) -> list[int]:
    """Token ids of `text` as the model reads a prompt (BOS first when the tokenizer has one)."""
    ids = model.tokenizer.encode(text, add_special_tokens=False)
    bos = model.bos_token_id
    return ([bos] if bos is not None else []) + list(ids)


def target_id(model, target: str) -> int:
    """The id of a one-token target; InputError naming the pieces when it is several tokens."""
    ids = model.tokenizer.encode(target, add_special_tokens=False)
    if len(ids) != 1:
        pieces = [model.tokenizer.decode([i]) for i in ids]
        raise InputError(f"target {target!r} is {len(ids)} tokens for this model ({pieces}); the edit and the "
                         "trace need a one-token target (mind the leading space, e.g. ' Paris')")
    return ids[0]


def subject_span(model, prompt: str, subject: str) -> tuple[list[int], int, int]:
    """(token ids of prompt, first subject token index, last subject token index + 1).

    Uses the last occurrence of `subject` in `prompt`. InputError when the subject is absent or
    its end does not fall on a token boundary of the prompt.
    """
    start = prompt.rfind(subject) if subject else -1
    if start < 0:
        raise InputError(f"subject {subject!r} does not occur in the prompt {prompt!r}; give the subject exactly "
                         "as written in the prompt (case and spaces included)")
    tokens = encode(model, prompt)
    end_tokens = encode(model, prompt[: start + len(subject)])
    if tokens[: len(end_tokens)] != end_tokens:
        raise InputError(f"the subject {subject!r} ends inside a token of {prompt!r} for this tokenizer; "
                         "choose a subject that ends at a word boundary")
    first = len(encode(model, prompt[:start].rstrip(" ")))
    first = min(first, len(end_tokens) - 1)
    return tokens, first, len(end_tokens)


def check_prompt(model, tokens: list[int]) -> None:
    if len(tokens) > model.cfg.n_ctx:
        raise InputError(f"prompt of {len(tokens)} tokens is longer than the model's context {model.cfg.n_ctx}")


def check_layer(model, layer: int, what: str = "layer") -> int:
    n = model.cfg.n_layers
    if not isinstance(layer, int) or not -n <= layer < n:
        raise InputError(f"{what} {layer} is out of range: this model has layers 0..{n - 1}")
    return layer % n
