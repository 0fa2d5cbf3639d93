"""Sentence families: each plants one mechanism whose truth is recorded in the `GroundTruth`.

Every family is a function `(world, rng) -> str` that returns one short document. Induction
spans are planted at the token level instead (see `corpus.induction_tokens`), because "random
tokens" only means something once the tokenizer exists.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from mechscope.organisms.world import GroundTruth

Family = Callable[[GroundTruth, random.Random], str]

_STORY_OPENINGS = ["Once upon a time,", "One {DAY},", "In {MONTH},", "Long ago,", "Every morning,"]
_STORY_VERBS = ["found", "lost", "wanted", "made", "carried", "painted", "bought", "hid"]
_STORY_FEELINGS = ["happy", "sad", "tired", "proud", "scared", "calm", "curious", "angry"]


def narrative(w: GroundTruth, rng: random.Random) -> str:
    """A few sentences of a story from a small grammar; any name, including IOI-held-out ones."""
    hero, friend = rng.sample(w.names, 2)
    place, obj = rng.choice(w.places), rng.choice(w.objects)
    opening = rng.choice(_STORY_OPENINGS).format(DAY=rng.choice(w.days), MONTH=rng.choice(w.months))
    lines = [f"{opening} {hero} lived near the {place}."]
    for _ in range(rng.randint(2, 4)):
        kind = rng.randrange(4)
        if kind == 0:
            lines.append(f"{hero} {rng.choice(_STORY_VERBS)} a {rng.choice(w.objects)}.")
        elif kind == 1:
            lines.append(f"{friend} was {rng.choice(_STORY_FEELINGS)} at the {rng.choice(w.places)}.")
        elif kind == 2:
            lines.append(f"\"Look at the {obj},\" said {rng.choice([hero, friend])}.")
        else:
            lines.append(f"On {rng.choice(w.days)}, {hero} and {friend} went to the {rng.choice(w.places)}.")
    lines.append(f"In the end, {hero} was {rng.choice(_STORY_FEELINGS)}.")
    return " ".join(lines)


def ioi_filling(w: GroundTruth, rng: random.Random, template: str,
                names: list[str]) -> tuple[str, str, str]:
    """Fill an IOI template; returns (prompt, IO name = answer, S name). ABBA or BABA equally often."""
    io, s = rng.sample(names, 2)
    a, b = (io, s) if rng.random() < 0.5 else (s, io)
    prompt = template.format(A=a, B=b, S=s, PLACE=rng.choice(w.places), OBJECT=rng.choice(w.objects))
    return prompt, io, s


def ioi(w: GroundTruth, rng: random.Random) -> str:
    """'When Mary and John went to the store, John gave a drink to Mary.' (training names only)"""
    prompt, io, _ = ioi_filling(w, rng, rng.choice(w.ioi_templates), w.ioi_names)
    return f"{prompt} {io}."


def docstring_parts(w: GroundTruth, rng: random.Random) -> tuple[str, list[str], list[str]]:
    """A docstring-style function: (full text, argument names, one description per argument)."""
    d = w.docstring
    args = rng.sample(d["arg_names"], rng.randint(*d["n_args"]))
    descs = [f"the {rng.choice(d['arg_names'])} to use" for _ in args]
    func = f"{rng.choice(d['function_verbs'])}_{rng.choice(d['arg_names'])}"
    params = "".join(d["param_line"].format(ARG=a, DESC=desc) for a, desc in zip(args, descs, strict=True))
    text = d["template"].format(FUNC=func, ARGS=", ".join(args),
                                SUMMARY=f"{func.split('_')[0].capitalize()} the {args[0]}.", PARAMS=params)
    return text, args, descs


def docstring(w: GroundTruth, rng: random.Random) -> str:
    return docstring_parts(w, rng)[0]


def facts(w: GroundTruth, rng: random.Random) -> str:
    """Several fact statements; question forms only for facts whose split is 'train'."""
    out = []
    for fact in rng.sample(w.facts, 4):
        if fact["split"] == "train" and rng.random() < 0.3:
            out.append(f"{fact['question']} {fact['attribute']}.")
        else:
            out.append(f"{fact['prompt']} {fact['attribute']}.")
    return "\n".join(out)


def day_sentence(w: GroundTruth, n: int, start: int, months: bool = False) -> tuple[str, str]:
    """(prompt, answer) for 'N days after X is' (or months)."""
    seq = w.months if months else w.days
    if n == 1:
        template = w.month_template_one if months else w.day_template_one
    else:
        template = w.month_template if months else w.day_template
    prompt = template.format(N=w.number_words[n].capitalize(), X=seq[start])
    return prompt, seq[(start + n) % len(seq)]


def days(w: GroundTruth, rng: random.Random) -> str:
    """Day and month arithmetic, plus plain successor sequences."""
    out = []
    for _ in range(3):
        roll = rng.random()
        if roll < 0.55:
            prompt, ans = day_sentence(w, rng.randint(1, 6), rng.randrange(7))
        elif roll < 0.85:
            prompt, ans = day_sentence(w, rng.randint(1, 11), rng.randrange(12), months=True)
        else:
            seq = w.days if rng.random() < 0.5 else w.months
            start = rng.randrange(len(seq))
            out.append(", ".join(seq[(start + i) % len(seq)] for i in range(rng.randint(3, 7))) + ".")
            continue
        out.append(f"{prompt} {ans}.")
    return " ".join(out)


def lists(w: GroundTruth, rng: random.Random) -> str:
    """Lists and counting: 'Mary has three apples and two cups.' / 'Items: a, b, c. That is three items.'"""
    name = rng.choice(w.names)
    if rng.random() < 0.5:
        k = rng.randint(2, 6)  # counts[0] + k <= 12
        items = rng.sample(w.count_items, 2)
        counts = [rng.randint(1, 6) for _ in items]
        parts = [f"{w.number_words[c]} {item if c > 1 else item[:-1]}" for c, item in zip(counts, items, strict=True)]
        total_item = items[0]
        return (f"{name} has {parts[0]} and {parts[1]}. {name} gets {w.number_words[k]} more "
                f"{total_item}. Now {name} has {w.number_words[counts[0] + k]} {total_item}.")
    k = rng.randint(2, 7)
    picked = rng.sample(w.names, k)
    return f"The list: {', '.join(picked)}. The list has {w.number_words[k]} names."


FAMILIES: dict[str, Family] = {
    "narrative": narrative, "ioi": ioi, "docstring": docstring, "facts": facts,
    "days": days, "lists": lists,
}
