"""Indirect object identification (Wang et al. 2022).

"When Mary and John went to the store, John gave a drink to" -> " Mary". The first clause names
A then B; the second clause's subject S repeats one of them, and the answer is the other one, the
indirect object IO. ABBA order: (A, B) = (IO, S); BABA: (A, B) = (S, IO). Prompts alternate the
two orders. Corruptions (same template, same token count):

- ``abc``: the ABC reference set: A, B and S replaced by three fresh distinct names (no name
  repeats, so nothing tells the model which name is the IO);
- ``flip_s2``: S2 replaced by IO (the answer flips to S);
- ``order``: A and B swapped (ABBA <-> BABA): same tokens, the position of S1 moves;
- ``rename``: IO and S replaced by two fresh names in the same order: the positions stay, the
  tokens change.

On an organism the names, places, objects and templates come from its ground truth (held-out
names when there are at least three); otherwise from generic English pools filtered to single
tokens for the model.
"""

from __future__ import annotations

import random

import torch

from mechscope.errors import InputError, NotApplicableError
from mechscope.tasks import vocab as V
from mechscope.tasks.base import Task, keep_modal_length, single_token_words

CORRUPTIONS = ("abc", "flip_s2", "order", "rename")
ORDER_LABELS = {"ABBA": 0, "BABA": 1}


def ioi_vocabulary(model) -> dict:
    """names, places, objects, templates for this model (organism ground truth or generic)."""
    gt = V.ground_truth_for(model)
    if gt is not None:
        names = gt.heldout_names if len(gt.heldout_names) >= 3 else gt.ioi_names
        pools = {"names": list(names), "places": gt.places, "objects": gt.objects,
                 "templates": list(gt.ioi_templates) + list(gt.heldout_ioi_templates), "source": "organism"}
    else:
        pools = {"names": V.GENERIC_NAMES, "places": V.GENERIC_PLACES, "objects": V.GENERIC_OBJECTS,
                 "templates": V.GENERIC_IOI_TEMPLATES, "source": "generic"}
    return {
        "names": single_token_words(model, pools["names"], need=5, what="names", task="IOI"),
        "places": single_token_words(model, pools["places"], need=1, what="places", task="IOI"),
        "objects": single_token_words(model, pools["objects"], need=1, what="objects", task="IOI"),
        "templates": [t for t in pools["templates"] if names_follow_spaces(t)],
        "source": pools["source"],
    }


def names_follow_spaces(template: str) -> bool:
    """True if every {A}/{B}/{S} is preceded by a space (so ' Name' is the token we look for)."""
    for key in ("{A}", "{B}", "{S}"):
        i = template.find(key)
        if i <= 0 or template[i - 1] != " ":
            return False
    return True


def ioi_task(model, n_prompts: int = 32, seed: int = 0, corrupt: str = "abc",
             template_ids: list[int] | None = None, metric: str = "logit_diff") -> Task:
    """IOI prompts with alternating ABBA/BABA order. All prompts share one token length (the most
    common one among the chosen templates). positions: IO, S1, S2, END; labels: order (0 ABBA,
    1 BABA), template."""
    if corrupt not in CORRUPTIONS:
        raise InputError(f"unknown IOI corruption {corrupt!r}: use one of {', '.join(CORRUPTIONS)}")
    voc = ioi_vocabulary(model)
    templates = voc["templates"]
    if template_ids is not None:
        try:
            templates = [templates[i] for i in template_ids]
        except IndexError:
            raise InputError(f"template ids {template_ids} out of range (0..{len(voc['templates']) - 1})") from None
    if not templates:
        raise NotApplicableError("no IOI template with space-separated names is available for this model")
    rng = random.Random(seed)
    records = []
    for i in range(4 * n_prompts):
        t_index = i % len(templates)
        records.append(_fill(templates[t_index], voc, rng, order="ABBA" if i % 2 == 0 else "BABA",
                             corrupt=corrupt) | {"template": t_index})
    keep, clean_tok, corrupt_tok = keep_modal_length(model, [(r["clean"], r["corrupt"]) for r in records])
    rows = []
    for j, idx in enumerate(keep):
        r = records[idx]
        pos = _name_positions(model, clean_tok[j], r)
        if pos is not None:
            rows.append((r, clean_tok[j], corrupt_tok[j], pos))
        if len(rows) == n_prompts:
            break
    if len(rows) < min(n_prompts, 4):
        raise NotApplicableError(f"only {len(rows)} IOI prompts tokenize with single-token names at fixed "
                                 "positions for this model")
    tok = model.tokenizer
    n = len(rows)
    return Task(
        name="ioi", metric=metric,
        clean_tokens=torch.tensor([r[1] for r in rows]), corrupt_tokens=torch.tensor([r[2] for r in rows]),
        answer_ids=torch.tensor([tok.encode(" " + r[0]["io"], add_special_tokens=False)[0] for r in rows]),
        wrong_ids=torch.tensor([tok.encode(" " + r[0]["s"], add_special_tokens=False)[0] for r in rows]),
        clean_prompts=[r[0]["clean"] for r in rows], corrupt_prompts=[r[0]["corrupt"] for r in rows],
        positions={k: torch.tensor([r[3][k] for r in rows]) for k in ("IO", "S1", "S2")}
        | {"END": torch.full((n,), len(rows[0][1]) - 1)},
        labels={"order": torch.tensor([ORDER_LABELS[r[0]["order"]] for r in rows]),
                "template": torch.tensor([r[0]["template"] for r in rows])},
        description=f"IOI ({voc['source']} vocabulary), corruption {corrupt!r}; metric logit(IO) - logit(S)")


def _fill(template: str, voc: dict, rng: random.Random, order: str, corrupt: str) -> dict:
    io, s, c, d, e = rng.sample(voc["names"], 5)
    place, obj = rng.choice(voc["places"]), rng.choice(voc["objects"])

    def text(a, b, subj):
        return template.format(A=a, B=b, S=subj, PLACE=place, OBJECT=obj)

    a, b = (io, s) if order == "ABBA" else (s, io)
    clean = text(a, b, s)
    if corrupt == "abc":
        corrupted = text(c, d, e)
    elif corrupt == "flip_s2":
        corrupted = text(a, b, io)
    elif corrupt == "order":
        corrupted = text(b, a, s)
    else:  # rename: same order, fresh IO (c) and S (d)
        a2, b2 = (c, d) if order == "ABBA" else (d, c)
        corrupted = text(a2, b2, d)
    return {"clean": clean, "corrupt": corrupted, "io": io, "s": s, "order": order}


def _name_positions(model, tokens: list[int], record: dict) -> dict | None:
    tok = model.tokenizer
    io_id = tok.encode(" " + record["io"], add_special_tokens=False)[0]
    s_id = tok.encode(" " + record["s"], add_special_tokens=False)[0]
    io_hits = [i for i, t in enumerate(tokens) if t == io_id]
    s_hits = [i for i, t in enumerate(tokens) if t == s_id]
    if len(io_hits) != 1 or len(s_hits) != 2:
        return None
    return {"IO": io_hits[0], "S1": s_hits[0], "S2": s_hits[1]}
