"""compiled-memory: facts (subject, relation) -> attribute stored as key-value memories in known
MLP units of two layers, after attention heads that move the subject and the relation to the end.

Task: ``[BOS] (filler)* the REL of SUBJ is`` -> `` ATTRIBUTE`` (16 subjects x 2 relations = 32 facts;
any number of filler words may come first: the movers find the subject by its flag, not its position).

Construction (GPT-2 blocks, 3 layers x 2 heads, d_model 96, d_head 48, ReLU; logical coordinates of
residual.py; which subjects, attributes, layers and units are drawn from the seed):

1. Embedding: the token one-hot ``token[t]``; subjects also write the flag ``is_subject``, relation
   words ``is_relation``, the word "is" ``is_query``, BOS ``is_bos``; every position writes C.
2. Layer 0, subject mover: query = 30 is_query (+ 10 toward BOS from a bias), key = is_subject
   (+ is_bos): "is" attends the subject, every other position the BOS sink. OV copies the subject's
   one-hot into ``moved_subject`` (BOS writes nothing). The relation mover does the same with
   ``is_relation`` -> ``moved_relation``.
3. Layers 1 and 2: the fact (s, r) -> a is one ReLU unit of one of these MLPs (16 facts each):
   key: pre = 10 (moved_subject[s] + moved_relation[r]) - 15 (positive only at "is" of a prompt about
   s and r), value: the unit writes 2 post / 10 along ``attribute[a]``, so the memory adds 10 to the
   attribute's logit. Units 16..23 of each memory layer are distractors that fire on one moved
   subject alone and write to ``scratch`` (unread).
4. Unembedding: logit(a) = 10 attribute[a].
MLP 0 and layers 1-2's heads are zero.
"""

from __future__ import annotations

import random

import torch

from mechscope.organisms.compiled.circuit import Circuit
from mechscope.organisms.compiled.gpt2_writer import SPECIAL, UNKNOWN, CompiledGPT2
from mechscope.organisms.compiled.residual import Layout

NAME = "compiled-memory"
CLAIMS = ("C14", "C12")   # the claims this organism is the planted ground truth for
SUBJECTS = ["zorvin", "blakee", "mundro", "pelquo", "raksil", "temwob", "grifen", "luxnar",
            "othyip", "hubcra", "vinbla", "keemun", "dropel", "quorak", "siltem", "wobgri"]
RELATIONS = {"color": ["red", "blue", "green", "yellow", "purple", "orange"],
             "home": ["forest", "desert", "river", "valley", "cave", "island"]}
ATTRIBUTES = [a for values in RELATIONS.values() for a in values]
WORDS, FILLERS = ["the", "of", "is"], ["so", "then", "and"]
MEMORY_LAYERS, N_DISTRACTORS = (1, 2), 8
MOVE, SINK, KEY, LOGIT = 30.0, 10.0, 10.0, 10.0


def _facts(seed: int) -> list[dict]:
    rng = random.Random(seed)
    facts = [{"subject": s, "relation": r, "attribute": rng.choice(values)}
             for s in SUBJECTS for r, values in RELATIONS.items()]
    order = list(range(len(facts)))
    rng.shuffle(order)
    per_layer = len(facts) // len(MEMORY_LAYERS)
    for slot, i in enumerate(order):               # half the facts in each memory layer, units in draw order
        facts[i].update(layer=MEMORY_LAYERS[slot // per_layer], unit=slot % per_layer)
    return facts


def compile_memory(seed: int = 0) -> tuple[CompiledGPT2, Circuit]:
    vocab = [SPECIAL, UNKNOWN] + WORDS + FILLERS + SUBJECTS + list(RELATIONS) + ATTRIBUTES
    layout = Layout(96)
    for name, size in [("token", len(vocab)), ("flags", 4), ("moved_subject", len(SUBJECTS)),
                       ("moved_relation", len(RELATIONS)), ("attribute", len(ATTRIBUTES)), ("scratch", N_DISTRACTORS)]:
        layout.add(name, size)
    net = CompiledGPT2(layout, vocab, n_layer=3, n_head=2, n_ctx=32, d_mlp=len(SUBJECTS) + N_DISTRACTORS)
    flag = {name: layout.index("flags", i) for i, name in enumerate(["is_bos", "is_subject", "is_relation", "is_query"])}
    tok = layout.span("token")
    net.embed[:, tok] = torch.eye(len(vocab), dtype=torch.float64)
    net.embed[0, flag["is_bos"]] = 1.0
    net.embed[net.token_id("is"), flag["is_query"]] = 1.0
    for s in SUBJECTS:
        net.embed[net.token_id(s), flag["is_subject"]] = 1.0
    for r in RELATIONS:
        net.embed[net.token_id(r), flag["is_relation"]] = 1.0
    for head, (what, words, target) in enumerate([("subject", SUBJECTS, "moved_subject"),
                                                  ("relation", list(RELATIONS), "moved_relation")]):
        h = net.heads[0][head]
        h["q"][flag["is_query"], 0] = MOVE
        h["k"][flag[f"is_{what}"], 0] = 1.0
        h["q_bias"][1] = SINK
        h["k"][flag["is_bos"], 1] = 1.0
        for i, word in enumerate(words):
            h["v"][layout.index("token", net.token_id(word)), i] = 1.0
            h["o"][i, layout.index(target, i)] = 1.0
    facts = _facts(seed)
    for fact in facts:
        mlp, unit = net.mlps[fact["layer"]], fact["unit"]
        mlp["mlp_in"][layout.index("moved_subject", SUBJECTS.index(fact["subject"])), unit] = KEY
        mlp["mlp_in"][layout.index("moved_relation", list(RELATIONS).index(fact["relation"])), unit] = KEY
        mlp["mlp_bias"][unit] = -1.5 * KEY
        mlp["mlp_out"][unit, layout.index("attribute", ATTRIBUTES.index(fact["attribute"]))] = 2 * LOGIT / KEY
    rng = random.Random(seed + 1)
    for layer in MEMORY_LAYERS:
        for d in range(N_DISTRACTORS):
            unit = len(SUBJECTS) + d
            subject = rng.randrange(len(SUBJECTS))
            net.mlps[layer]["mlp_in"][layout.index("moved_subject", subject), unit] = KEY
            net.mlps[layer]["mlp_bias"][unit] = -0.5 * KEY
            net.mlps[layer]["mlp_out"][unit, layout.index("scratch", d)] = 1.0 / KEY
    for i, a in enumerate(ATTRIBUTES):
        net.unembed[layout.index("attribute", i), net.token_id(a)] = LOGIT
    for fact in facts:
        fact["prompt"] = f"the {fact['relation']} of {fact['subject']} is"
    return net, _circuit(facts, layout)


def _circuit(facts: list[dict], layout: Layout) -> Circuit:
    def direction(slot, i):
        return [round(x, 8) for x in layout.direction(slot, i).tolist()]

    nodes = {"input": "token one-hot and the flags is_subject / is_relation / is_query / is_bos",
             "a0.h0": "subject mover: 'is' attends the subject, copies it into moved_subject",
             "a0.h1": "relation mover: 'is' attends the relation word, copies it into moved_relation",
             "m1": "key-value memories for half the facts (one unit per fact)",
             "m2": "key-value memories for the other half", "logits": "logit(a) = 10 attribute[a]"}
    edges = {f"input->a0.h{h}<{x}>": text for h in (0, 1) for x, text in
             [("q", "is_query flag (and the BOS-sink bias)"), ("k", "subject / relation flag and is_bos"),
              ("v", "identity of the subject / relation word")]}
    edges.update({f"a0.h{h}->m{L}": "moved subject / relation form the memory key" for h in (0, 1) for L in (1, 2)})
    edges.update({"m1->logits": "values: attribute unembedding directions", "m2->logits": "values, as m1"})
    units = {f"m{L}": [{"units": [f["unit"]], "role": f"fact: {f['subject']} {f['relation']} -> {f['attribute']}",
                        "subject": f["subject"], "relation": f["relation"], "attribute": f["attribute"],
                        "position": "last ('is')"} for f in facts if f["layer"] == L] for L in (1, 2)}
    directions = {f"moved_subject.{s}": direction("moved_subject", i) for i, s in enumerate(SUBJECTS)}
    directions.update({f"moved_relation.{r}": direction("moved_relation", i) for i, r in enumerate(RELATIONS)})
    directions.update({f"attribute.{a}": direction("attribute", i) for i, a in enumerate(ATTRIBUTES)})
    return Circuit(
        organism=NAME, task="facts: 'the REL of SUBJ is' -> attribute", nodes=nodes, edges=edges, mlp_units=units,
        extra={"facts": facts, "relations": RELATIONS, "fillers": FILLERS,
               "key": "a fact's key is moved_subject.S + moved_relation.R, read at the last position ('is')",
               "value": "a fact's value is attribute.A, the attribute's unembedding direction (logit gain 10)",
               "directions": directions,
               "distractor_units": {f"m{L}": list(range(len(SUBJECTS), len(SUBJECTS) + N_DISTRACTORS))
                                    for L in MEMORY_LAYERS},
               "layout": layout.to_dict()})


def fact_prompts(model, circuit: Circuit, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens [n_facts 8], answers [n_facts]): [BOS] f f the REL of SUBJ is, with two random filler
    words f (the subject is at position 6 in every row)."""
    rng = random.Random(seed)
    rows, answers = [], []
    for fact in circuit.extra["facts"]:
        words = [rng.choice(FILLERS) for _ in range(2)] + fact["prompt"].split()
        rows.append([0] + model.tokenizer.convert_tokens_to_ids(words))
        answers.append(model.tokenizer.convert_tokens_to_ids(fact["attribute"]))
    return torch.tensor(rows), torch.tensor(answers)


def recall(model, tokens: torch.Tensor, answers: torch.Tensor) -> float:
    """Top-1 accuracy of the attribute at the last position."""
    return (model(tokens)[:, -1].argmax(-1) == answers).float().mean().item()


def measure(model, circuit: Circuit, seed: int = 1) -> dict[str, float]:
    """Fact recall and node faithfulness (heads and MLPs as nodes, ablation.py)."""
    from mechscope.organisms.compiled.ablation import node_faithfulness, node_means

    tokens, answers = fact_prompts(model, circuit, seed)
    means = node_means(model, fact_prompts(model, circuit, seed + 1)[0])
    with torch.no_grad():
        out = {"fact_recall": recall(model, tokens, answers)}
    faith = node_faithfulness(model, lambda: recall(model, tokens, answers), means, circuit.heads(), circuit.mlps())
    out.update(faithfulness=faith.faithfulness, ablated_recall=faith.circuit_ablated)
    return {k: round(v, 4) for k, v in out.items()}
