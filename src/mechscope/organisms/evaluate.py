"""Metrics for an organism: held-out natural-text loss and each planted mechanism.

All prompts are drawn with a fixed evaluation seed that the corpus never uses, from the
held-out splits of the `GroundTruth` where there is one (IOI: held-out names; facts: question
form on held-out facts is reported separately from recall of the trained statements).

Metrics (names as they appear in training cards):
- ``heldout_text_loss``: mean next-token loss (nats) on held-out natural text.
- ``ioi_accuracy``: fraction of IOI prompts (held-out names, all templates) with logit(IO) > logit(S);
  ``ioi_logit_diff``: mean logit(IO) - logit(S); ``ioi_heldout_template_accuracy``.
- ``induction_loss_ratio``: loss on the 2nd copy of a repeated random-token span / loss on the 1st,
  the span placed after random prefixes of 0, 7 and 23 tokens.
- ``fact_recall``: top-1 accuracy of the statement prompt on every fact;
  ``fact_question_heldout``: top-1 of the question form on facts whose question was never trained.
- ``day_accuracy`` / ``month_accuracy``: top-1 on every "N days after X is" (n 1..6) / months (n 1..11).
- ``docstring_accuracy``: top-1 of the next argument after "    :param".
"""

from __future__ import annotations

import random

import numpy as np
import torch

from mechscope.organisms.sentences import day_sentence, docstring_parts, ioi_filling
from mechscope.organisms.world import GroundTruth
from mechscope.tasks.induction import copy_losses, next_token_loss

EVAL_SEED = 12345


def _first_token(tokenizer, word: str) -> int:
    return tokenizer.encode(" " + word, add_special_tokens=False)[0]


@torch.no_grad()
def last_logits(model, tokenizer, prompts: list[str], batch_size: int = 64) -> torch.Tensor:
    """Logits at each prompt's last token, BOS prepended. Returns [n_prompts, vocab]."""
    bos = tokenizer.bos_token_id
    out = []
    for i in range(0, len(prompts), batch_size):
        ids = [[bos, *x] for x in tokenizer(prompts[i:i + batch_size], add_special_tokens=False)["input_ids"]]
        lengths = torch.tensor([len(x) for x in ids])
        batch = torch.full((len(ids), int(lengths.max())), bos, dtype=torch.long)
        for j, x in enumerate(ids):
            batch[j, :len(x)] = torch.tensor(x)
        mask = (torch.arange(batch.shape[1])[None] < lengths[:, None]).long()
        logits = model(input_ids=batch, attention_mask=mask).logits
        out.append(logits[torch.arange(len(ids)), lengths - 1].float())
    return torch.cat(out)


def top1_accuracy(model, tokenizer, prompts: list[str], answers: list[str]) -> float:
    if not prompts:
        return float("nan")
    logits = last_logits(model, tokenizer, prompts)
    target = torch.tensor([_first_token(tokenizer, a) for a in answers])
    return float((logits.argmax(-1) == target).float().mean())


@torch.no_grad()
def heldout_loss(model, tokens: np.ndarray, seq_len: int, max_sequences: int = 32) -> float:
    n = min(len(tokens) // seq_len, max_sequences)
    if n == 0:
        return float("nan")
    x = torch.from_numpy(tokens[: n * seq_len].astype(np.int64)).view(n, seq_len)
    return float(model(input_ids=x, labels=x).loss)


def ioi_prompts(gt: GroundTruth, n: int, names: list[str], templates: list[str], seed: int = EVAL_SEED):
    """n IOI prompts: list of (prompt, io_name, s_name)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        out.append(ioi_filling(gt, rng, rng.choice(templates), names))
    return out


def ioi_metrics(model, tokenizer, gt: GroundTruth, n: int = 200) -> dict[str, float]:
    res = {}
    for key, templates in [("", gt.ioi_templates + gt.heldout_ioi_templates),
                           ("_heldout_template", gt.heldout_ioi_templates)]:
        items = ioi_prompts(gt, n, gt.heldout_names, templates)
        logits = last_logits(model, tokenizer, [p for p, _, _ in items])
        io = torch.tensor([_first_token(tokenizer, x) for _, x, _ in items])
        s = torch.tensor([_first_token(tokenizer, x) for _, _, x in items])
        diff = logits[torch.arange(len(items)), io] - logits[torch.arange(len(items)), s]
        res[f"ioi{key}_accuracy"] = float((diff > 0).float().mean())
        if not key:
            res["ioi_logit_diff"] = float(diff.mean())
    return res


@torch.no_grad()
def induction_loss_ratio(model, vocab_size: int, bos_id: int, n: int = 32, span: int = 20, seed: int = EVAL_SEED,
                         prefixes: tuple[int, ...] = (0, 7, 23)) -> float:
    """Mean loss over the 2nd copy / over the 1st copy of a random span (first token of each excluded).

    Each sequence is BOS + P random tokens + span + span (random tokens never BOS), for every P in
    `prefixes`: a span that always starts right after BOS can be copied by absolute position alone,
    which is not induction.
    """
    g = torch.Generator().manual_seed(seed)

    def random_ids(shape):                       # uniform over the vocabulary without BOS
        ids = torch.randint(0, vocab_size - 1, shape, generator=g)
        return ids + (ids >= bos_id).long()

    first, second = [], []
    for n_prefix in prefixes:
        spans = random_ids((n, span))
        prefix = random_ids((n, n_prefix))
        x = torch.cat([torch.full((n, 1), bos_id, dtype=torch.long), prefix, spans, spans], dim=1)
        a, b = copy_losses(next_token_loss(model(input_ids=x).logits, x), 1 + n_prefix, span)
        first.append(a)
        second.append(b)
    return float(torch.cat(second).mean() / torch.cat(first).mean())


def fact_metrics(model, tokenizer, gt: GroundTruth) -> dict[str, float]:
    held = [f for f in gt.facts if f["split"] == "heldout"]
    return {
        "fact_recall": top1_accuracy(model, tokenizer, [f["prompt"] for f in gt.facts],
                                     [f["attribute"] for f in gt.facts]),
        "fact_question_heldout": top1_accuracy(model, tokenizer, [f["question"] for f in held],
                                               [f["attribute"] for f in held]),
    }


def day_metrics(model, tokenizer, gt: GroundTruth) -> dict[str, float]:
    days = [day_sentence(gt, n, s) for n in range(1, 7) for s in range(7)]
    months = [day_sentence(gt, n, s, months=True) for n in range(1, 12) for s in range(12)]
    return {"day_accuracy": top1_accuracy(model, tokenizer, *map(list, zip(*days, strict=True))),
            "month_accuracy": top1_accuracy(model, tokenizer, *map(list, zip(*months, strict=True)))}


def docstring_prompts(gt: GroundTruth, n: int, seed: int = EVAL_SEED) -> list[tuple[str, str]]:
    """(prompt ending in '    :param', next argument) pairs; k >= 1 params already documented."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        text, args, descs = docstring_parts(gt, rng)
        k = rng.randint(1, len(args) - 1)
        cut = text.index(gt.docstring["param_line"].format(ARG=args[k], DESC=descs[k]))
        out.append((text[:cut] + "    :param", args[k]))
    return out


def evaluate(model, tokenizer, gt: GroundTruth, heldout_tokens: np.ndarray | None = None,
             seq_len: int = 256, n_prompts: int = 200) -> dict[str, float]:
    """Every metric in the module docstring (IOI and day metrics only when the corpus planted those
    families, `GroundTruth.plants`); the model is put in eval mode and restored."""
    was_training = model.training
    model.eval()
    try:
        res: dict[str, float] = {}
        if heldout_tokens is not None and len(heldout_tokens):
            res["heldout_text_loss"] = heldout_loss(model, heldout_tokens, seq_len)
        if gt.plants("ioi"):
            res.update(ioi_metrics(model, tokenizer, gt, n_prompts))
        res["induction_loss_ratio"] = induction_loss_ratio(model, model.config.vocab_size, tokenizer.bos_token_id)
        res.update(fact_metrics(model, tokenizer, gt))
        if gt.plants("days"):
            res.update(day_metrics(model, tokenizer, gt))
        doc = docstring_prompts(gt, n_prompts)
        res["docstring_accuracy"] = top1_accuracy(model, tokenizer, [p for p, _ in doc], [a for _, a in doc])
        return res
    finally:
        model.train(was_training)
