"""compiled-ioi: the IOI circuit of Wang et al. 2022 in miniature, written by hand.

Task: the generic IOI prompts of `mechscope.tasks.ioi` ("When Mary and John went to the store, John
gave a drink to" -> " Mary"), with the generic names, places and objects as single tokens.

Construction (GPT-2 blocks, 3 layers x 2 heads, d_model 192, d_head 96, 32 positions; logical
coordinates of residual.py; which head index plays which role is drawn from the seed):

1. Embedding: a name writes its one-hot in ``name`` and the flag ``is_name``; "to" writes ``is_query``;
   BOS writes ``is_bos``; position p >= 1 writes (cos p d, sin p d), d = pi / 32 (position 0, BOS,
   writes none); every position writes C. Other words write nothing else.
2. Layer 0, duplicate-token head: score = B [same name] - A cos((p - j) d) + S_b [j is BOS] with
   A = 5000, B = 2A + 100, S_b = B - A + 12: an earlier occurrence of the same name beats BOS by >= 12,
   BOS beats the position itself by 12, so S2 attends S1 and every first occurrence attends BOS. OV
   copies the attended name into ``dup_name`` (BOS writes nothing): only S2 carries it.
3. Layer 1, S-inhibition head: "to" attends the position carrying a ``dup_name`` (score 30; BOS 15
   otherwise) and copies ``dup_name`` (the subject S) into ``inhibit`` at the end.
4. Layer 2, name mover: score = 30 is_name(j) - 60 <inhibit, name(j)> (Q-composition with step 3):
   the end attends the one name that is not inhibited, the indirect object, and copies it into
   ``answer`` (+1). The negative name mover has the same attention and writes -0.3 of the name.
5. Unembedding: logit(name) = 10 answer[name]: logit diff IO - S = 7 (10 without the negative mover).
6. Distractors: a BOS head in layer 0 and a uniform-attention head in layer 1 write into ``scratch``.
MLPs are zero.
"""

from __future__ import annotations

import math
import random
import re

import torch

from mechscope.organisms.compiled.circuit import Circuit
from mechscope.organisms.compiled.gpt2_writer import SPECIAL, UNKNOWN, CompiledGPT2
from mechscope.organisms.compiled.residual import Layout
from mechscope.tasks.vocab import GENERIC_IOI_TEMPLATES, GENERIC_NAMES, GENERIC_OBJECTS, GENERIC_PLACES

NAME = "compiled-ioi"
CLAIMS = ("C10", "C13", "C12")   # the claims this organism is the planted ground truth for
N_CTX, D_MODEL, N_HEAD = 32, 192, 2
A_POS = 5000.0
B_MATCH = 2 * A_POS + 100
SINK_DUP = B_MATCH - A_POS + 12
MOVE, SINK, INHIBIT, LOGIT, NEGATIVE = 30.0, 15.0, 60.0, 10.0, 0.3
ROLES = [["duplicate-token", "bos"], ["s-inhibition", "average"], ["name-mover", "negative-name-mover"]]
ROLE_TEXT = {
    "duplicate-token": "duplicate-token head: S2 attends S1, writes S into dup_name (first occurrences attend BOS)",
    "s-inhibition": "S-inhibition head: END attends S2 (the position with dup_name), moves S into inhibit",
    "name-mover": "name mover: END attends the names not inhibited (the IO) and copies it to the logits",
    "negative-name-mover": "negative name mover: attends the IO like the name mover and writes -0.3 of it",
    "bos": "distractor: attends BOS, writes a constant into scratch",
    "average": "distractor: uniform attention, writes the share of names seen into scratch",
}


def template_words() -> list[str]:
    words: list[str] = []
    for template in GENERIC_IOI_TEMPLATES:
        for w in re.findall(r"\w+|[^\w\s]+", re.sub(r"\{\w+\}", " ", template)):
            if w not in words:
                words.append(w)
    return words


def compile_ioi(seed: int = 0) -> tuple[CompiledGPT2, Circuit]:
    names = list(GENERIC_NAMES)
    others = [w for w in template_words() + GENERIC_PLACES + GENERIC_OBJECTS if w not in names]
    vocab = [SPECIAL, UNKNOWN] + names + list(dict.fromkeys(others))
    layout = Layout(D_MODEL)
    for slot, size in [("flags", 3), ("pos", 2), ("name", len(names)), ("dup_name", len(names)),
                       ("inhibit", len(names)), ("answer", len(names)), ("scratch", 2)]:
        layout.add(slot, size)
    net = CompiledGPT2(layout, vocab, n_layer=3, n_head=N_HEAD, n_ctx=N_CTX)
    flag = {f: layout.index("flags", i) for i, f in enumerate(["is_bos", "is_name", "is_query"])}
    n, eye = len(names), torch.eye(len(names), dtype=torch.float64)
    net.embed[0, flag["is_bos"]] = 1.0
    net.embed[net.token_id("to"), flag["is_query"]] = 1.0
    for i, name in enumerate(names):
        net.embed[net.token_id(name), layout.index("name", i)] = net.embed[net.token_id(name), flag["is_name"]] = 1.0
    angles = torch.arange(N_CTX, dtype=torch.float64) * math.pi / N_CTX
    net.pos[1:, layout.span("pos")] = torch.stack([angles.cos(), angles.sin()], 1)[1:]
    net.unembed[layout.span("answer"), 2:2 + n] = LOGIT * eye

    rng = random.Random(seed)
    roles = [list(layer) for layer in ROLES]
    for layer in roles:
        rng.shuffle(layer)
    for layer, layer_roles in enumerate(roles):
        for head, role in enumerate(layer_roles):
            h = net.heads[layer][head]
            if role == "duplicate-token":
                h["q"][layout.span("name"), :n] = B_MATCH * eye
                h["k"][layout.span("name"), :n] = eye
                h["q"][layout.span("pos"), n:n + 2] = -A_POS * torch.eye(2, dtype=torch.float64)
                h["k"][layout.span("pos"), n:n + 2] = torch.eye(2, dtype=torch.float64)
                h["q_bias"][n + 2] = SINK_DUP
                h["k"][flag["is_bos"], n + 2] = 1.0
                h["v"][layout.span("name"), :n] = eye
                h["o"][:n, layout.span("dup_name")] = eye
            elif role == "s-inhibition":
                h["q"][flag["is_query"], 0] = MOVE
                h["k"][layout.span("dup_name"), 0] = 1.0
                h["q_bias"][1] = SINK
                h["k"][flag["is_bos"], 1] = 1.0
                h["v"][layout.span("dup_name"), :n] = eye
                h["o"][:n, layout.span("inhibit")] = eye
            elif role in ("name-mover", "negative-name-mover"):
                h["q_bias"][0] = MOVE
                h["k"][flag["is_name"], 0] = 1.0
                h["q"][layout.span("inhibit"), 1:1 + n] = -INHIBIT * eye
                h["k"][layout.span("name"), 1:1 + n] = eye
                h["v"][layout.span("name"), :n] = eye
                h["o"][:n, layout.span("answer")] = (1.0 if role == "name-mover" else -NEGATIVE) * eye
            elif role == "bos":
                h["q_bias"][0] = MOVE
                h["k"][flag["is_bos"], 0] = 1.0
                h["v"][flag["is_bos"], 0] = 1.0
                h["o"][0, layout.index("scratch", 0)] = 1.0
            else:                                                   # average: zero scores, uniform attention
                h["v"][flag["is_name"], 0] = 1.0
                h["o"][0, layout.index("scratch", 1)] = 1.0
    return net, _circuit(roles, layout)


def _circuit(roles: list[list[str]], layout: Layout) -> Circuit:
    node = {role: f"a{layer}.h{head}" for layer, rs in enumerate(roles) for head, role in enumerate(rs)}
    dup, sinh, nm, neg = (node[r] for r in ("duplicate-token", "s-inhibition", "name-mover", "negative-name-mover"))
    nodes = {"input": "name one-hots, flags is_name / is_query / is_bos, position code"}
    nodes.update({node[r]: ROLE_TEXT[r] for r in ("duplicate-token", "s-inhibition", "name-mover", "negative-name-mover")})
    nodes["logits"] = "logit(name) = 10 answer[name]"
    edges = {f"input->{dup}<q>": "current name and position", f"input->{dup}<k>": "earlier names, positions, BOS",
             f"input->{dup}<v>": "the earlier name", f"input->{sinh}<q>": "is_query ('to')",
             f"{dup}->{sinh}<k>": "dup_name marks S2 as the key", f"input->{sinh}<k>": "BOS sink",
             f"{dup}->{sinh}<v>": "S, moved to the end"}
    for mover in (nm, neg):
        edges.update({f"{sinh}->{mover}<q>": "inhibit: S's names are scored down (Q-composition)",
                      f"input->{mover}<k>": "is_name and the name one-hot of each key",
                      f"input->{mover}<v>": "the attended name", f"{mover}->logits": "the copied name (+1 / -0.3)"})
    roles_by_head = {f"a{layer}.h{head}": role for layer, rs in enumerate(roles) for head, role in enumerate(rs)}
    return Circuit(organism=NAME, task="ioi", nodes=nodes, edges=edges,
                   extra={"head_roles": roles_by_head,
                          "distractors": {h: ROLE_TEXT[r] for h, r in roles_by_head.items() if h not in nodes},
                          "positions": {dup: "S2 (query) -> S1 (key)", sinh: "END -> S2", nm: "END -> IO",
                                        neg: "END -> IO"},
                          "layout": layout.to_dict()})


def measure(model, circuit: Circuit, seed: int = 1) -> dict[str, float]:
    """IOI accuracy and logit diff over every generic template, the attention of each circuit head at
    its recorded positions, and node faithfulness of the logit diff (template 0, ablation.py)."""
    from mechscope.organisms.compiled.ablation import node_faithfulness, node_means
    from mechscope.tasks.ioi import ioi_task

    def logit_diff(task) -> torch.Tensor:
        last = model(task.clean_tokens)[:, -1]
        return last.gather(1, task.answer_ids[:, None])[:, 0] - last.gather(1, task.wrong_ids[:, None])[:, 0]

    task = ioi_task(model, n_prompts=64, seed=seed)
    with torch.no_grad():
        diff = logit_diff(task)
        _, cache = model.run_with_cache(task.clean_tokens, names=[f"blocks.{L}.attn.hook_pattern" for L in range(3)])
    out = {"ioi_accuracy": (diff > 0).float().mean().item(), "logit_diff": diff.mean().item()}
    roles = {role: (int(h.split(".")[0][1:]), int(h.split(".")[1][1:])) for h, role in circuit.extra["head_roles"].items()}
    rows = torch.arange(len(task))
    for role, (query, key) in {"duplicate-token": ("S2", "S1"), "s-inhibition": ("END", "S2"),
                               "name-mover": ("END", "IO"), "negative-name-mover": ("END", "IO")}.items():
        layer, head = roles[role]
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"][rows, head, task.positions[query], task.positions[key]]
        out[f"{role.replace('-', '_')}_attention"] = pattern.mean().item()
    fixed = ioi_task(model, n_prompts=32, seed=seed, template_ids=[0])
    means = node_means(model, ioi_task(model, n_prompts=32, seed=seed + 1, template_ids=[0]).clean_tokens)
    faith = node_faithfulness(model, lambda: logit_diff(fixed).mean().item(), means, circuit.heads(), circuit.mlps())
    out.update(faithfulness=faith.faithfulness, ablated_logit_diff=faith.circuit_ablated)
    return {k: round(v, 4) for k, v in out.items()}
