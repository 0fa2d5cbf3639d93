"""Factual recall: "The capital of France is" -> " Paris" (or an organism's planted facts).

The corrupt prompt asks about another subject with the same relation and the same token count;
the wrong answer is that subject's attribute. positions: "subject" (the last subject token,
where clean and corrupt differ), "END".
"""

from __future__ import annotations

import random

import torch

from mechscope.errors import NotApplicableError
from mechscope.tasks import vocab as V
from mechscope.tasks.base import Task, tokenize


def fact_table(model) -> list[tuple[str, str, str]]:
    """(prompt, answer word, relation) triples: the organism's trained facts, or generic capitals."""
    gt = V.ground_truth_for(model)
    if gt is not None:
        return [(f["prompt"], f["attribute"], f["relation"]) for f in gt.facts if f.get("split", "train") == "train"]
    return [(V.GENERIC_FACT_TEMPLATE.format(X=x), y, "capital") for x, y in V.GENERIC_FACTS]


def facts_task(model, n_prompts: int = 32, seed: int = 0, metric: str = "logit_diff") -> Task:
    """Clean and corrupt prompts share the relation and the token count (grouped by both)."""
    facts = [(p, a, r) for p, a, r in fact_table(model) if model.is_single_token(" " + a)]
    by_len: dict[tuple[str, int], list[tuple[str, str, list[int]]]] = {}
    for p, a, r in facts:
        toks = tokenize(model, p)
        by_len.setdefault((r, len(toks)), []).append((p, a, toks))
    usable = {n: group for n, group in by_len.items() if len({a for _, a, _ in group}) >= 2}
    if not usable:
        raise NotApplicableError(
            f"the facts task needs at least two facts with single-token answers and equal prompt lengths; "
            f"{len(facts)} of {len(fact_table(model))} candidate facts have single-token answers for this model")
    group = max(usable.values(), key=len)
    rng = random.Random(seed)
    rows = []
    for i in range(n_prompts):
        p, a, toks = group[i % len(group)]
        others = [g for g in group if g[1] != a]
        q, b, toks2 = rng.choice(others)
        rows.append((p, q, a, b, toks, toks2))
    tok = model.tokenizer
    clean = torch.tensor([r[4] for r in rows])
    corrupt = torch.tensor([r[5] for r in rows])
    diff = (clean != corrupt)
    subject = torch.tensor([int(d.nonzero().max()) if d.any() else 0 for d in diff])
    return Task(
        name="facts", metric=metric, clean_tokens=clean, corrupt_tokens=corrupt,
        answer_ids=torch.tensor([tok.encode(" " + r[2], add_special_tokens=False)[0] for r in rows]),
        wrong_ids=torch.tensor([tok.encode(" " + r[3], add_special_tokens=False)[0] for r in rows]),
        clean_prompts=[r[0] for r in rows], corrupt_prompts=[r[1] for r in rows],
        positions={"subject": subject, "END": torch.full((len(rows),), clean.shape[1] - 1)},
        description="fact recall; corrupt prompt asks about another subject")
