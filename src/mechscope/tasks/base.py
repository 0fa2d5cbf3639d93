"""A prompt task: clean and corrupted prompts, the answer the model should give, and a metric.

Every prompt pair has the same number of tokens (clean and corrupt differ only in a few tokens),
and every prompt of a task has the same length, so activations line up position by position and
patching grids over (layer, position) mean the same thing for every prompt. The answer is read at
`answer_pos` (the last position by default).

Metrics (per prompt, from the logits at the answer position):

- ``logit_diff``: logit(answer) - logit(wrong answer)  (linear in the logits);
- ``prob``: probability of the answer;
- ``kl``: minus KL(reference || patched) with the clean run as reference (0 = clean behaviour).

Usage::

    task = Task.from_pairs(model, [("The capital of France is", "The capital of Italy is", " Paris", " Rome")])
    base = task.baseline(model)        # clean / corrupt metric, accuracy
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Literal

import torch

from mechscope.errors import InputError, NotApplicableError
from mechscope.results import Result

Metric = Literal["logit_diff", "prob", "kl"]
METRICS: tuple[str, ...] = ("logit_diff", "prob", "kl")


@dataclasses.dataclass
class Task:
    """Clean/corrupt prompt pairs with single-token answers.

    clean_tokens, corrupt_tokens: [n pos] token ids (same shape; no padding).
    answer_ids: [n] the token the clean prompt should produce.
    wrong_ids: [n] the competing token (usually the corrupt prompt's answer).
    positions: named positions per prompt, e.g. {"IO": [n], "S2": [n], "END": [n]}.
    labels: per-prompt integer labels, e.g. {"order": [n]} (0 = ABBA, 1 = BABA).
    """

    name: str
    clean_tokens: torch.Tensor
    corrupt_tokens: torch.Tensor
    answer_ids: torch.Tensor
    wrong_ids: torch.Tensor
    metric: str = "logit_diff"
    answer_pos: int = -1
    clean_prompts: list[str] = dataclasses.field(default_factory=list)
    corrupt_prompts: list[str] = dataclasses.field(default_factory=list)
    positions: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)
    labels: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)
    description: str = ""

    def __post_init__(self):
        if self.metric not in METRICS:
            raise InputError(f"unknown metric {self.metric!r}: use one of {', '.join(METRICS)}")
        if self.clean_tokens.ndim != 2 or self.clean_tokens.shape != self.corrupt_tokens.shape:
            raise InputError(
                f"task {self.name!r}: clean tokens {tuple(self.clean_tokens.shape)} and corrupt tokens "
                f"{tuple(self.corrupt_tokens.shape)} must both be [n_prompts, n_pos] with the same shape; "
                "write corrupt prompts with the same number of tokens as their clean prompts")
        n = self.clean_tokens.shape[0]
        if n == 0:
            raise InputError(f"task {self.name!r} has no prompts")
        if self.answer_ids.shape != (n,) or self.wrong_ids.shape != (n,):
            raise InputError(f"task {self.name!r}: answer_ids and wrong_ids must have shape [{n}]")

    def __len__(self) -> int:
        return self.clean_tokens.shape[0]

    @property
    def n_pos(self) -> int:
        return self.clean_tokens.shape[1]

    @property
    def resolved_answer_pos(self) -> int:
        return self.answer_pos % self.n_pos

    def subset(self, index) -> Task:
        """The prompts selected by `index` (slice, list or bool/long tensor) as a new Task."""
        idx = torch.arange(len(self))[index]
        idx = idx.reshape(-1)
        pick = idx.tolist()
        return dataclasses.replace(
            self, clean_tokens=self.clean_tokens[idx], corrupt_tokens=self.corrupt_tokens[idx],
            answer_ids=self.answer_ids[idx], wrong_ids=self.wrong_ids[idx],
            clean_prompts=[self.clean_prompts[i] for i in pick] if self.clean_prompts else [],
            corrupt_prompts=[self.corrupt_prompts[i] for i in pick] if self.corrupt_prompts else [],
            positions={k: v[idx] for k, v in self.positions.items()},
            labels={k: v[idx] for k, v in self.labels.items()})

    def swapped(self) -> Task:
        """The same pairs with clean and corrupt exchanged (answers exchanged too)."""
        return dataclasses.replace(
            self, clean_tokens=self.corrupt_tokens, corrupt_tokens=self.clean_tokens,
            answer_ids=self.wrong_ids, wrong_ids=self.answer_ids,
            clean_prompts=self.corrupt_prompts, corrupt_prompts=self.clean_prompts)

    def differing_positions(self) -> torch.Tensor:
        """[n_pos] bool: positions where clean and corrupt tokens differ in at least one prompt."""
        return (self.clean_tokens != self.corrupt_tokens).any(dim=0)

    # ---- metrics -------------------------------------------------------------------------------

    def score(self, answer_logits: torch.Tensor, prompt_index: torch.Tensor | None = None,
              reference_logits: torch.Tensor | None = None) -> torch.Tensor:
        """Per-row metric from logits at the answer position.

        answer_logits: [rows d_vocab]; prompt_index: [rows] which prompt each row belongs to
        (default: row i is prompt i); reference_logits: [n d_vocab] clean logits (for "kl").
        Returns [rows]. Differentiable.
        """
        rows = answer_logits.shape[0]
        if prompt_index is None:
            prompt_index = torch.arange(rows)
        prompt_index = prompt_index.to(answer_logits.device)
        answers = self.answer_ids.to(answer_logits.device)[prompt_index]
        logits = answer_logits.float()
        if self.metric == "logit_diff":
            wrong = self.wrong_ids.to(answer_logits.device)[prompt_index]
            return logits.gather(1, answers[:, None])[:, 0] - logits.gather(1, wrong[:, None])[:, 0]
        if self.metric == "prob":
            return logits.softmax(-1).gather(1, answers[:, None])[:, 0]
        if reference_logits is None:
            raise InputError("the 'kl' metric needs the clean logits as reference")
        ref = reference_logits.to(answer_logits.device).float()[prompt_index].log_softmax(-1)
        return -(ref.exp() * (ref - logits.log_softmax(-1))).sum(-1)

    def baseline(self, model) -> TaskBaseline:
        """Run the clean and corrupt prompts once (unembedding only the answer position); metric values
        and accuracy (answer > wrong)."""
        from mechscope.tasks.answer import answer_logits

        clean = answer_logits(model, self.clean_tokens, self.answer_pos).float()
        corrupt = answer_logits(model, self.corrupt_tokens, self.answer_pos).float()
        return self.baseline_from_logits(clean, corrupt)

    def baseline_from_logits(self, clean: torch.Tensor, corrupt: torch.Tensor) -> TaskBaseline:
        """The baseline from answer logits [n d_vocab] of the clean and corrupt prompts (e.g. read in
        several batches and concatenated)."""
        clean, corrupt = clean.float(), corrupt.float()
        clean_scores = self.score(clean, reference_logits=clean)
        corrupt_scores = self.score(corrupt, reference_logits=clean)
        right = clean.gather(1, self.answer_ids.to(clean.device)[:, None])[:, 0]
        wrong = clean.gather(1, self.wrong_ids.to(clean.device)[:, None])[:, 0]
        top1 = (clean.argmax(-1).cpu() == self.answer_ids).float().mean().item()
        logit_diff = (right - wrong).cpu()
        return TaskBaseline(
            task=self.name, metric=self.metric, n_prompts=len(self),
            clean_metric=clean_scores.mean().item(), corrupt_metric=corrupt_scores.mean().item(),
            clean_per_prompt=clean_scores.cpu(), corrupt_per_prompt=corrupt_scores.cpu(),
            logit_diff=logit_diff.mean().item(), accuracy=(logit_diff > 0).float().mean().item(),
            top1_accuracy=top1, clean_answer_logits=clean.cpu(), corrupt_answer_logits=corrupt.cpu())

    # ---- construction --------------------------------------------------------------------------

    @classmethod
    def from_pairs(cls, model, pairs: Sequence[Any], *, name: str = "custom", metric: str = "logit_diff",
                   prepend_bos: bool | None = None) -> Task:
        """A task from (clean_prompt, corrupt_prompt, answer, wrong_answer) tuples or dicts with
        those keys. Answers must be single tokens (mind the leading space: " Paris"); prompts of a
        pair must have the same number of tokens, and all prompts the same length."""
        rows = [_pair_fields(p) for p in pairs]
        if not rows:
            raise InputError("from_pairs needs at least one (clean, corrupt, answer, wrong) pair")
        clean = [r[0] for r in rows]
        corrupt = [r[1] for r in rows]
        clean_tok = [tokenize(model, t, prepend_bos) for t in clean]
        corrupt_tok = [tokenize(model, t, prepend_bos) for t in corrupt]
        for text_c, text_x, a, b in zip(clean, corrupt, clean_tok, corrupt_tok, strict=True):
            if len(a) != len(b):
                raise InputError(
                    f"clean prompt {text_c!r} has {len(a)} tokens but corrupt prompt {text_x!r} has {len(b)}; "
                    "patching needs them to line up: pick corrupt words with the same token count")
        lengths = {len(t) for t in clean_tok}
        if len(lengths) != 1:
            raise InputError(f"prompts have different token lengths {sorted(lengths)}; give prompts of one "
                             "length (or build one task per length)")
        answers = [model.to_single_token(r[2], what="answer") for r in rows]
        wrongs = [model.to_single_token(r[3], what="wrong answer") for r in rows]
        return cls(name=name, clean_tokens=torch.tensor(clean_tok), corrupt_tokens=torch.tensor(corrupt_tok),
                   answer_ids=torch.tensor(answers), wrong_ids=torch.tensor(wrongs), metric=metric,
                   clean_prompts=clean, corrupt_prompts=corrupt)


@dataclasses.dataclass
class TaskBaseline(Result):
    """How the unpatched model does on a task. *_per_prompt: [n]; *_answer_logits: [n d_vocab]."""

    _json_exclude = ("clean_answer_logits", "corrupt_answer_logits")

    task: str
    metric: str
    n_prompts: int
    clean_metric: float
    corrupt_metric: float
    clean_per_prompt: torch.Tensor
    corrupt_per_prompt: torch.Tensor
    logit_diff: float
    accuracy: float
    top1_accuracy: float
    clean_answer_logits: torch.Tensor
    corrupt_answer_logits: torch.Tensor

    @property
    def gap(self) -> float:
        """clean - corrupt metric: the effect patching tries to recover."""
        return self.clean_metric - self.corrupt_metric

    def figure(self):
        import plotly.graph_objects as go

        fig = go.Figure()
        fig.add_histogram(x=self.clean_per_prompt.tolist(), name="clean", opacity=0.7)
        fig.add_histogram(x=self.corrupt_per_prompt.tolist(), name="corrupt", opacity=0.7)
        fig.update_layout(barmode="overlay", title=f"{self.task}: {self.metric} per prompt",
                          xaxis_title=self.metric, yaxis_title="prompts")
        return fig


# ---- vocabulary helpers ------------------------------------------------------------------------


def _pair_fields(pair) -> tuple[str, str, str, str]:
    if isinstance(pair, dict):
        try:
            return pair["clean"], pair["corrupt"], pair["answer"], pair["wrong"]
        except KeyError as err:
            raise InputError(f"a pair dict needs keys clean, corrupt, answer, wrong; missing {err}") from None
    if len(pair) != 4:
        raise InputError(f"a pair must be (clean, corrupt, answer, wrong); got {len(pair)} fields")
    return tuple(pair)


def tokenize(model, text: str, prepend_bos: bool | None = None) -> list[int]:
    """Token ids of one prompt as the model would see it (BOS as the model's default)."""
    return model.to_tokens(text, prepend_bos=prepend_bos)[0].tolist()


def single_token_words(model, words: Sequence[str], *, prefix: str = " ", need: int = 1,
                       what: str = "words", task: str = "task") -> list[str]:
    """The words of `words` that are one token (with `prefix`, usually a leading space).

    Raises NotApplicableError when fewer than `need` survive: the model lacks the vocabulary.
    """
    seen, kept = set(), []
    for w in words:
        if w not in seen and model.is_single_token(prefix + w):
            kept.append(w)
            seen.add(w)
    if len(kept) < need:
        raise NotApplicableError(
            f"the {task} task needs at least {need} {what} that are single tokens for this model, found "
            f"{len(kept)} ({', '.join(kept[:8]) or 'none'}) out of {len(set(words))} candidates; the model's "
            f"vocabulary ({len(model.tokenizer)} tokens) lacks them")
    return kept


def keep_modal_length(model, prompts: list[tuple[str, str]], prepend_bos: bool | None = None
                      ) -> tuple[list[int], list[list[int]], list[list[int]]]:
    """Tokenize (clean, corrupt) pairs; keep those whose clean and corrupt lengths agree and whose
    length is the most common one. Returns (kept indices, clean token lists, corrupt token lists)."""
    toks = [(tokenize(model, c, prepend_bos), tokenize(model, x, prepend_bos)) for c, x in prompts]
    lengths = [len(c) for c, x in toks if len(c) == len(x)]
    if not lengths:
        return [], [], []
    modal = max(set(lengths), key=lambda n: (lengths.count(n), -n))
    keep = [i for i, (c, x) in enumerate(toks) if len(c) == len(x) == modal]
    return keep, [toks[i][0] for i in keep], [toks[i][1] for i in keep]
