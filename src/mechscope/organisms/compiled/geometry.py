"""compiled-geometry: days and months on planted circles, and linear concepts (plural, capitalised)
along planted directions that add.

Tasks: ``N days after DAY is`` -> the day N later (N = one..six) and ``N months after MONTH is``
(N = one..eleven), answered through the circles; after a noun, ``run`` vs ``runs`` follows its plural
direction and ``!`` vs ``.`` its capitalised direction (``[BOS] the Cats`` -> ``run`` and ``!``).

Construction (GPT-2 blocks, 1 layer x 3 heads, d_model 96, d_head 32, ReLU; logical coordinates of
residual.py):

1. Embedding: day d (Monday = 0) writes (cos 2 pi d / 7, sin 2 pi d / 7) in ``day_circle``, month m
   (January = 0) the same with 12 in ``month_circle``, and the flag ``is_calendar``; they have no other
   identity. Number words write a one-hot in ``number`` and ``is_number``. A noun writes its base one-hot
   in ``noun``, ``is_noun``, and 1 along ``plural`` / ``capitalised`` when it is plural / capitalised:
   "Cats" - "cat" = plural + capitalised exactly.
2. Layer 0: head 0 moves the circles from the calendar word to ``is`` (query 30 is_query, key
   is_calendar, BOS sink 10), head 1 moves the number one-hot, head 2 is a distractor that attends BOS
   and writes a constant to ``scratch``.
3. MLP 0: one ReLU unit per (kind, N, X): pre = G (<moved circle, u_X> + moved_number[N]) - G (1 + t),
   with u_X the circle point of X and t halfway between cos(2 pi / period) and 1, so the unit fires
   only when the moved circle points at X and the number is N; it writes 10 to the answer's logit.
   The circle is read, never a day's identity: rotating the circle rotates the answer.
4. Unembedding: the answer slot; logit(run) = 10 plural, logit(runs) = 10 (is_noun - plural), logit(!)
   = 10 capitalised, logit(.) = 10 (is_noun - capitalised).
"""

from __future__ import annotations

import math

import torch

from mechscope.organisms.compiled.circuit import Circuit
from mechscope.organisms.compiled.gpt2_writer import SPECIAL, UNKNOWN, CompiledGPT2
from mechscope.organisms.compiled.residual import Layout

NAME = "compiled-geometry"
CLAIMS = ("C07", "C06")   # the claims this organism is the planted ground truth for
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
NUMBERS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven"]
NOUNS = ["cat", "dog", "bird", "tree", "house", "car", "book", "river"]
CALENDARS = {"day": (DAYS, 6), "month": (MONTHS, 11)}         # kind -> (items, largest N)
WORDS = ["the", "days", "months", "after", "is", "run", "runs", "!", "."]
MOVE, SINK, G, LOGIT = 30.0, 10.0, 150.0, 10.0


def noun_forms(noun: str) -> dict[tuple[bool, bool], str]:
    """(plural, capitalised) -> the word."""
    return {(p, c): (noun.capitalize() if c else noun) + ("s" if p else "") for p in (False, True) for c in (False, True)}


def compile_geometry(seed: int = 0) -> tuple[CompiledGPT2, Circuit]:
    """The construction has no random choice; `seed` is recorded only."""
    forms = [w for noun in NOUNS for w in noun_forms(noun).values()]
    vocab = [SPECIAL, UNKNOWN] + WORDS + DAYS + MONTHS + NUMBERS + forms
    layout = Layout(96)
    for name, size in [("flags", 5), ("day_circle", 2), ("month_circle", 2), ("number", len(NUMBERS)),
                       ("noun", len(NOUNS)), ("plural", 1), ("capitalised", 1), ("moved_day", 2), ("moved_month", 2),
                       ("moved_number", len(NUMBERS)), ("answer", len(DAYS) + len(MONTHS)), ("scratch", 1)]:
        layout.add(name, size)
    flag = {f: layout.index("flags", i) for i, f in enumerate(["is_bos", "is_query", "is_calendar", "is_number", "is_noun"])}
    units = [(kind, n, x) for kind, (items, top) in CALENDARS.items() for n in range(1, top + 1) for x in range(len(items))]
    net = CompiledGPT2(layout, vocab, n_layer=1, n_head=3, n_ctx=16, d_mlp=len(units))
    E, tid = net.embed, net.token_id
    E[0, flag["is_bos"]] = 1.0
    E[tid("is"), flag["is_query"]] = 1.0
    for kind, (items, _) in CALENDARS.items():
        for i, item in enumerate(items):
            E[tid(item), layout.span(f"{kind}_circle")] = _point(i, len(items))
            E[tid(item), flag["is_calendar"]] = 1.0
    for i, word in enumerate(NUMBERS):
        E[tid(word), layout.index("number", i)] = E[tid(word), flag["is_number"]] = 1.0
    for i, noun in enumerate(NOUNS):
        for (plural, capital), word in noun_forms(noun).items():
            E[tid(word), layout.index("noun", i)] = E[tid(word), flag["is_noun"]] = 1.0
            E[tid(word), layout.index("plural")] = float(plural)
            E[tid(word), layout.index("capitalised")] = float(capital)
    eye2 = torch.eye(2, dtype=torch.float64)
    for head, key in enumerate(["is_calendar", "is_number", None]):
        h = net.heads[0][head]
        h["q_bias"][1] = SINK
        h["k"][flag["is_bos"], 1] = 1.0
        if key is None:                                               # the distractor: BOS only
            h["v"][flag["is_bos"], 0] = 1.0
            h["o"][0, layout.index("scratch")] = 1.0
            continue
        h["q"][flag["is_query"], 0] = MOVE
        h["k"][flag[key], 0] = 1.0
        if key == "is_calendar":
            h["v"][layout.span("day_circle"), 0:2] = h["v"][layout.span("month_circle"), 2:4] = eye2
            h["o"][0:2, layout.span("moved_day")] = h["o"][2:4, layout.span("moved_month")] = eye2
        else:
            h["v"][layout.span("number"), :len(NUMBERS)] = torch.eye(len(NUMBERS), dtype=torch.float64)
            h["o"][:len(NUMBERS), layout.span("moved_number")] = torch.eye(len(NUMBERS), dtype=torch.float64)
    mlp = net.mlps[0]
    for unit, (kind, n, x) in enumerate(units):
        items = CALENDARS[kind][0]
        t = (1 + math.cos(2 * math.pi / len(items))) / 2
        mlp["mlp_in"][layout.span(f"moved_{kind}"), unit] = G * _point(x, len(items))
        mlp["mlp_in"][layout.index("moved_number", n - 1), unit] = G
        mlp["mlp_bias"][unit] = -G * (1 + t)
        answer = (x + n) % len(items) + (0 if kind == "day" else len(DAYS))
        mlp["mlp_out"][unit, layout.index("answer", answer)] = LOGIT / (G * (1 - t))
    for i, item in enumerate(DAYS + MONTHS):
        net.unembed[layout.index("answer", i), tid(item)] = LOGIT
    for concept, yes, no in [("plural", "run", "runs"), ("capitalised", "!", ".")]:
        net.unembed[layout.index(concept), tid(yes)] = LOGIT
        net.unembed[layout.index(concept), tid(no)] = -LOGIT
        net.unembed[flag["is_noun"], tid(no)] = LOGIT
    return net, _circuit(layout, units)


def _point(i: int, period: int) -> torch.Tensor:
    angle = 2 * math.pi * i / period
    return torch.tensor([math.cos(angle), math.sin(angle)], dtype=torch.float64)


def _circuit(layout: Layout, units: list) -> Circuit:
    def direction(slot, i=0):
        return [round(x, 8) for x in layout.direction(slot, i).tolist()]

    circles = {kind: {"items": items, "angles": {item: round(2 * math.pi * i / len(items), 8) for i, item in enumerate(items)},
                      "subspace": [direction(f"{kind}_circle", 0), direction(f"{kind}_circle", 1)],
                      "where": "hook_embed and blocks.0.hook_resid_pre at the day/month token (radius 1); "
                               f"moved to the last position in blocks.0.hook_resid_mid along moved_{kind}",
                      "moved_subspace": [direction(f"moved_{kind}", 0), direction(f"moved_{kind}", 1)]}
               for kind, (items, _) in CALENDARS.items()}
    concepts = {c: {"direction": direction(c), "where": "hook_embed onward at the noun's position (value 0 or 1)",
                    "readout": readout} for c, readout in
                [("plural", "logit(run) - logit(runs) = 20 plural - 10"),
                 ("capitalised", "logit(!) - logit(.) = 20 capitalised - 10")]}
    mlp_units = {"m0": [{"units": [u], "role": f"{kind}: N={n}, X={CALENDARS[kind][0][x]} -> "
                         f"{CALENDARS[kind][0][(x + n) % len(CALENDARS[kind][0])]}"} for u, (kind, n, x) in enumerate(units)]}
    return Circuit(
        organism=NAME, task="days/months arithmetic 'N days after X is'; noun concepts plural/capitalised",
        nodes={"input": "circles, number one-hots, noun one-hots and concept directions",
               "a0.h0": "calendar mover: 'is' attends the day/month, copies its circle point",
               "a0.h1": "number mover: 'is' attends the number word, copies its one-hot",
               "m0": "one unit per (N, X): fires when the moved circle points at X and the number is N",
               "logits": "the answer's logit; the concept readouts"},
        edges={"input->a0.h0<q>": "is_query", "input->a0.h0<k>": "is_calendar (and BOS sink)",
               "input->a0.h0<v>": "circle point of the day/month", "input->a0.h1<q>": "is_query",
               "input->a0.h1<k>": "is_number (and BOS sink)", "input->a0.h1<v>": "number one-hot",
               "a0.h0->m0": "moved circle", "a0.h1->m0": "moved number", "m0->logits": "the answer",
               "input->logits": "concept directions read by the unembedding at the noun"},
        mlp_units=mlp_units,
        extra={"circles": circles, "concepts": concepts, "distractors": {"a0.h2": "attends BOS, writes scratch"},
               "numbers": NUMBERS, "nouns": NOUNS, "layout": layout.to_dict()})


def calendar_prompts(model, kind: str) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int]]]:
    """Every 'N {kind}s after X is' prompt: (tokens [n 6], answers [n], (N, X index) per row)."""
    items, top = CALENDARS[kind]
    rows, answers, which = [], [], []
    for n in range(1, top + 1):
        for x, item in enumerate(items):
            words = [NUMBERS[n - 1], f"{kind}s", "after", item, "is"]
            rows.append([0] + model.tokenizer.convert_tokens_to_ids(words))
            answers.append(model.tokenizer.convert_tokens_to_ids(items[(x + n) % len(items)]))
            which.append((n, x))
    return torch.tensor(rows), torch.tensor(answers), which


def calendar_accuracy(model, kind: str) -> float:
    tokens, answers, _ = calendar_prompts(model, kind)
    return (model(tokens)[:, -1].argmax(-1) == answers).float().mean().item()


def measure(model, circuit: Circuit, seed: int = 1) -> dict[str, float]:
    """Day and month accuracy and node faithfulness on the month prompts (ablation.py)."""
    from mechscope.organisms.compiled.ablation import node_faithfulness, node_means

    with torch.no_grad():
        out = {"day_accuracy": calendar_accuracy(model, "day"), "month_accuracy": calendar_accuracy(model, "month")}
    tokens, answers, _ = calendar_prompts(model, "month")
    means = node_means(model, tokens)
    faith = node_faithfulness(model, lambda: (model(tokens)[:, -1].argmax(-1) == answers).float().mean().item(),
                              means, circuit.heads(), circuit.mlps())
    out.update(faithfulness=faith.faithfulness, ablated_month_accuracy=faith.circuit_ablated)
    return {k: round(v, 4) for k, v in out.items()}
