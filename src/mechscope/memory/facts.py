"""The facts a model knows, as `Fact`s with paraphrases and neighbours, and counterfactual rewrites.

On an organism the facts are the ones its corpus planted (statement prompt; the question form is
the paraphrase); on any other model, the generic capitals. Only facts whose answer is one token and
that the model gets right (top-1) are kept: editing or tracing a fact the model does not know
measures nothing.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import torch

from mechscope.errors import MechscopeError, NotApplicableError
from mechscope.memory.prompts import Fact
from mechscope.tasks import vocab as V

GENERIC_PARAPHRASE = "{X}'s capital city is"


@dataclasses.dataclass(frozen=True)
class Rewrite:
    """Change `fact` (whose target is the model's current answer) to answer `new_target`."""

    fact: Fact
    new_target: str


def planted_facts(model) -> list[dict] | None:
    """The facts a compiled organism (or its null twin) plants, from its circuit.json: dicts with
    subject, relation, attribute, prompt, layer and unit; None for any other model."""
    from mechscope.organisms.compiled.circuit import load_circuit

    spec = str(getattr(model, "spec", "") or "").removeprefix("null-twin:")
    name = spec.removeprefix("organism:")
    if not spec or (name == spec and not (Path(spec) / "circuit.json").is_file()):
        return None
    try:
        facts = load_circuit(name).extra.get("facts")
    except MechscopeError:        # an organism without circuit.json: not a compiled one
        return None
    return facts if facts and all("prompt" in f for f in facts) else None


def _candidates(model) -> list[tuple[str, str, str, str, str]]:
    """(prompt, subject, answer, relation, paraphrase) of every candidate fact."""
    planted = planted_facts(model)
    if planted is not None:
        # the compiled organisms read any filler words before the prompt: that is the paraphrase
        return [(f["prompt"], f["subject"], f["attribute"], f["relation"], "so " + f["prompt"]) for f in planted]
    gt = V.ground_truth_for(model)
    if gt is not None:
        return [(f["prompt"], f["entity"], f["attribute"], f["relation"], f["question"])
                for f in gt.facts if f.get("split", "train") == "train"]
    return [(V.GENERIC_FACT_TEMPLATE.format(X=x), x, y, "capital", GENERIC_PARAPHRASE.format(X=x))
            for x, y in V.GENERIC_FACTS]


def last_token_logits(model, prompts: list[str], batch_size: int = 64) -> torch.Tensor:
    """[n d_vocab] logits at each prompt's last token (right-padded batches with the model's mask)."""
    out = []
    for i in range(0, len(prompts), batch_size):
        batch = model.tokenize(prompts[i: i + batch_size])
        with torch.no_grad():
            logits = model(batch.tokens, attention_mask=batch.attention_mask)
        last = batch.attention_mask.sum(1) - 1
        out.append(logits[torch.arange(len(last)), last].float().cpu())
    return torch.cat(out)


def candidate_facts(model, n_neighbours: int = 5, seed: int = 0, known_only: bool = True) -> list[Fact]:
    """Facts with one-token answers (those the model predicts top-1 when `known_only`), each with its
    paraphrase and up to `n_neighbours` facts of other subjects with the same relation.
    NotApplicableError if none is left."""
    rows = [r for r in _candidates(model) if model.is_single_token(" " + r[2])]
    if not rows:
        raise NotApplicableError("none of the candidate facts has a one-token answer for this model's "
                                 "vocabulary; the memory analyses need single-token answers")
    if known_only:
        ok = recalled(model, [Fact(r[0], r[1], " " + r[2]) for r in rows])
        rows = [r for r, hit in zip(rows, ok, strict=True) if hit]
        if not rows:
            raise NotApplicableError("the model answers none of the candidate facts correctly (top-1); there "
                                     "is no stored fact to trace or edit")
    rng = random.Random(seed)
    facts = []
    for prompt, subject, answer, relation, paraphrase in rows:
        others = [(p, " " + a) for p, s, a, r, _ in rows if r == relation and s != subject]
        rng.shuffle(others)
        facts.append(Fact(prompt=prompt, subject=subject, target=" " + answer, paraphrases=(paraphrase,),
                          neighbours=tuple(others[:n_neighbours])))
    return facts


def recalled(model, facts: list[Fact]) -> list[bool]:
    """Whether the model's top-1 token after each prompt is the fact's target."""
    logits = last_token_logits(model, [f.prompt for f in facts])
    answers = torch.tensor([model.to_single_token(f.target) for f in facts])
    return (logits.argmax(-1) == answers).tolist()


def known_facts(model, n_neighbours: int = 5, seed: int = 0) -> list[Fact]:
    """`candidate_facts` the model gets right (top-1)."""
    return candidate_facts(model, n_neighbours, seed, known_only=True)


def counterfactuals(model, n: int = 30, seed: int = 0, known_only: bool = True) -> list[Rewrite]:
    """`n` facts (known ones when `known_only`; seeded choice), each with a new one-token target drawn
    from the other answers of its relation; neighbours whose answer is the new target are dropped."""
    facts = candidate_facts(model, n_neighbours=50, seed=seed, known_only=known_only)
    pools: dict[str, set[str]] = {}
    for f in facts:
        pools.setdefault(f.prompt.replace(f.subject, "{}"), set()).add(f.target)
    rng = random.Random(seed)
    rng.shuffle(facts)
    out = []
    for f in facts:
        choices = sorted(pools[f.prompt.replace(f.subject, "{}")] - {f.target})
        if not choices:
            continue
        new = rng.choice(choices)
        neighbours = tuple(x for x in f.neighbours if x[1] != new)[:5]
        out.append(Rewrite(dataclasses.replace(f, neighbours=neighbours), new))
    if len(out) < n:
        raise NotApplicableError(f"only {len(out)} known facts have an alternative answer; {n} were asked for")
    return out[:n]
