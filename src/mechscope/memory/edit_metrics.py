"""How well an edit took, scored as in ROME / CounterFact, read from the model as it is now.

Per rewrite (fact with old answer o, new answer n):

- efficacy: P(n) > P(o) on the edited prompt; efficacy_top1: n is the top-1 token;
- paraphrase: P(n) > P(o) on each paraphrase (mean over them);
- neighbourhood: on facts of other subjects (answer a), P(a) > P(n): left alone (mean over them);
  neighbourhood_top1: their top-1 is still a. Neighbours that are themselves among the rewrites (a
  batch edit such as MEMIT's) are left out: their answer was meant to change.

`edit_scores` averages these over the rewrites.
"""

from __future__ import annotations

import torch

from mechscope.memory.facts import Rewrite, last_token_logits


def edit_scores(model, rewrites: list[Rewrite]) -> dict[str, float]:
    edited = {rw.fact.prompt for rw in rewrites}
    prompts: list[str] = []
    rows: list[tuple[str, int, int, int]] = []   # (kind, rewrite index, wanted id, other id)
    for i, rw in enumerate(rewrites):
        new = model.to_single_token(rw.new_target)
        old = model.to_single_token(rw.fact.target)
        prompts.append(rw.fact.prompt)
        rows.append(("efficacy", i, new, old))
        for p in rw.fact.paraphrases:
            prompts.append(p)
            rows.append(("paraphrase", i, new, old))
        for p, a in rw.fact.neighbours:
            if p in edited:
                continue
            prompts.append(p)
            rows.append(("neighbourhood", i, model.to_single_token(a), new))
    logits = last_token_logits(model, prompts)
    per: dict[str, list[list[float]]] = {}
    for (kind, i, want, other), lg in zip(rows, logits, strict=True):
        for name, ok in ((kind, bool(lg[want] > lg[other])), (kind + "_top1", int(lg.argmax()) == want)):
            per.setdefault(name, [[] for _ in rewrites])[i].append(float(ok))
    out = {}
    for name, lists in per.items():
        means = [sum(x) / len(x) for x in lists if x]
        out[name] = sum(means) / len(means) if means else float("nan")
    return out


def heldout_loss(model, tokens: torch.Tensor) -> float:
    """Mean next-token cross-entropy (nats) over tokens [n pos]."""
    with torch.no_grad():
        logits = model(tokens)
    return float(torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(), tokens[:, 1:].flatten()))
