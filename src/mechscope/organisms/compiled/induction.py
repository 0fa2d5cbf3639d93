"""compiled-induction: the textbook two-layer induction circuit, written by hand, with distractors.

Task: [BOS] r_1..r_n r_1..r_n with random tokens r; in the second copy the model predicts r_{i+1}
after r_i by copying, in the first copy it cannot (uniform over the vocabulary).

Construction (GPT-2 blocks, 2 layers x 4 heads, d_model 192, d_head 48, 48 tokens, 96 positions; all
in logical coordinates of residual.py; which head index plays which role is drawn from the seed):

1. Embedding: token t writes the one-hot ``token[t]``; position p writes ``pos = (cos p d, sin p d)``
   with d = pi / n_ctx, and the constant C in ``const`` (so LayerNorm is the identity, residual.py).
2. Layer 0, previous-token head: query = A R(-d) pos_p, key = pos_j, so score = A cos((p - 1 - j) d),
   highest at j = p - 1 with margin A (1 - cos d) = 16 over j = p and j = p - 2. OV copies
   ``token`` of the attended position into ``prev`` (identity).
3. Layer 1, induction head: query = B token[t] (t != BOS), key = ``prev`` of the key position, so a
   key whose previous token equals the current token scores B = 30 (K-composition with step 2); the
   BOS position scores B / 2 through a query bias and a key reading token[BOS] (the sink when there is
   no earlier occurrence). OV copies ``token`` of the attended position into ``copy``.
4. Unembedding: logit(t) = 20 copy[t].
5. Distractors (measurable, never read by the circuit; each writes its own ``scratch.*`` slot):
   layer 0: a BOS head (score 20 on BOS), a self head (A cos((p - j) d)), a duplicate-token head
   (score 2A + 100 on an equal word token minus A cos((p - j) d): the earliest earlier occurrence,
   itself when there is none); layer 1: a BOS head, an averaging head (uniform attention) and a
   lag-2 look-back head. Self / duplicate / averaging / look-back heads write a 2-d code of the
   token they attend to; BOS heads write a constant.
MLPs are zero.
"""

from __future__ import annotations

import math
import random

import torch

from mechscope.organisms.compiled.circuit import Circuit
from mechscope.organisms.compiled.gpt2_writer import SPECIAL, UNKNOWN, CompiledGPT2
from mechscope.organisms.compiled.residual import Layout

NAME = "compiled-induction"
CLAIMS = ("C09", "C13")   # the claims this organism is the planted ground truth for
N_VOCAB, N_CTX, D_MODEL, N_HEAD = 48, 96, 192, 4
A_POS = 3.0e4        # positional sharpness: margin A (1 - cos(pi / n_ctx)) ~ 16
B_MATCH = 30.0       # induction score of a matching key
SINK = 15.0          # induction score of BOS
BOS_SCORE = 20.0     # BOS heads
LOGIT = 20.0         # unembedding gain of the copy slot
LAYER0_ROLES = ["previous-token", "bos", "self", "duplicate-token"]
LAYER1_ROLES = ["induction", "bos", "average", "lag-2"]
ROLE_TEXT = {
    "previous-token": "previous-token head: attends p-1 by position, writes that token's identity into `prev`",
    "induction": "induction head: attends the key whose previous token equals the current token "
                 "(K-composition with the previous-token head), copies its token into `copy` (read by logits)",
    "bos": "distractor: attends BOS, writes a constant into its scratch slot",
    "self": "distractor: attends its own position, writes a 2-d code of the current token into scratch",
    "duplicate-token": "distractor: attends the earliest earlier occurrence of the current token "
                       "(itself if none), writes a 2-d code of it into scratch",
    "average": "distractor: uniform attention over positions 0..p, writes the mean token code into scratch",
    "lag-2": "distractor: look-back head attending p-2 by position, writes that token's code into scratch",
}


def _roles(seed: int) -> list[list[str]]:
    rng = random.Random(seed)
    roles = [list(LAYER0_ROLES), list(LAYER1_ROLES)]
    for layer in roles:
        rng.shuffle(layer)
    return roles


def _rotation(angle: float) -> torch.Tensor:
    """[2 2]: maps (cos a, sin a) to (cos(a - angle), sin(a - angle)) when multiplied on the right."""
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s], [s, c]], dtype=torch.float64)


def compile_induction(seed: int = 0) -> tuple[CompiledGPT2, Circuit]:
    """The weights (logical coordinates) and the circuit; metrics are filled in by `build`."""
    layout = Layout(D_MODEL)
    for name, size in [("token", N_VOCAB), ("pos", 2), ("prev", N_VOCAB), ("copy", N_VOCAB)]:
        layout.add(name, size)
    vocab = [SPECIAL, UNKNOWN] + [f"tok{i:02d}" for i in range(N_VOCAB - 2)]
    net = CompiledGPT2(layout, vocab, n_layer=2, n_head=N_HEAD, n_ctx=N_CTX)
    tok, pos, prev, copy = (layout.span(s) for s in ("token", "pos", "prev", "copy"))
    step = math.pi / N_CTX
    eye = torch.eye(N_VOCAB, dtype=torch.float64)
    ids = torch.arange(N_VOCAB, dtype=torch.float64) * 2 * math.pi / N_VOCAB
    code = torch.stack([ids.cos(), ids.sin()], 1)                     # [vocab 2] token code for scratch

    net.embed[:, tok] = eye
    angles = torch.arange(N_CTX, dtype=torch.float64) * step
    net.pos[:, pos] = torch.stack([angles.cos(), angles.sin()], 1)
    net.unembed[copy, 1:] = LOGIT * eye[:, 1:]

    roles = _roles(seed)
    where = {(layer, role): head for layer, rs in enumerate(roles) for head, role in enumerate(rs)}
    for layer, layer_roles in enumerate(roles):
        for head, role in enumerate(layer_roles):
            h = net.heads[layer][head]
            if role in ("previous-token", "self", "lag-2"):
                lag = {"previous-token": 1, "self": 0, "lag-2": 2}[role]
                h["q"][pos, :2] = A_POS * _rotation(lag * step)
                h["k"][pos, :2] = torch.eye(2, dtype=torch.float64)
            elif role == "duplicate-token":
                words = N_VOCAB - 2                                        # equal tokens, BOS and <unk> aside
                h["q"][tok, :words] = (2 * A_POS + 100) * eye[:, 2:]
                h["k"][tok, :words] = eye[:, 2:]
                h["q"][pos, words:words + 2] = -A_POS * torch.eye(2, dtype=torch.float64)
                h["k"][pos, words:words + 2] = torch.eye(2, dtype=torch.float64)
            elif role == "bos":
                h["q_bias"][0] = BOS_SCORE
                h["k"][layout.index("token", 0), 0] = 1.0
            elif role == "induction":
                h["q"][tok, :N_VOCAB - 1] = B_MATCH * eye[:, 1:]           # current token (not BOS)
                h["k"][prev, :N_VOCAB - 1] = eye[:, 1:]                    # previous token of the key
                h["q_bias"][N_VOCAB - 1] = SINK
                h["k"][layout.index("token", 0), N_VOCAB - 1] = 1.0        # the BOS sink
            if role == "previous-token":
                h["v"][tok, :] = eye
                h["o"][:, prev] = eye
            elif role == "induction":
                h["v"][tok, :N_VOCAB - 1] = eye[:, 1:]
                h["o"][:N_VOCAB - 1, copy] = eye[1:, :]
            else:
                slot = layout.add(f"scratch.a{layer}.h{head}", 2 if role != "bos" else 1)
                if role == "bos":
                    h["v"][layout.index("token", 0), 0] = 1.0
                    h["o"][0, slot] = 1.0
                else:
                    h["v"][tok, :2] = code
                    h["o"][:2, slot:slot + 2] = torch.eye(2, dtype=torch.float64)
    return net, _circuit(where, layout)


def _circuit(where: dict[tuple[int, str], int], layout: Layout) -> Circuit:
    prev = f"a0.h{where[0, 'previous-token']}"
    ind = f"a1.h{where[1, 'induction']}"
    nodes = {"input": "token one-hot, position code (cos, sin) and the constant",
             prev: ROLE_TEXT["previous-token"], ind: ROLE_TEXT["induction"],
             "logits": "logit(t) = 20 * copy[t]"}
    edges = {
        f"input->{prev}<q>": "position code of the query (rotated by one step)",
        f"input->{prev}<k>": "position code of the key",
        f"input->{prev}<v>": "token identity of the previous position",
        f"input->{ind}<q>": "current token identity",
        f"{prev}->{ind}<k>": "K-composition: the previous-token signal keys the induction head",
        f"input->{ind}<k>": "BOS token keys the sink used when the current token has no earlier occurrence",
        f"input->{ind}<v>": "token identity of the attended position (the token to copy)",
        f"{ind}->logits": "the copied token, read by the unembedding",
    }
    roles = {f"a{layer}.h{head}": role for (layer, role), head in where.items()}
    distractors = {node: ROLE_TEXT[role] for node, role in sorted(roles.items()) if node not in nodes}
    return Circuit(organism=NAME, task="induction", nodes=nodes, edges=edges,
                   extra={"head_roles": dict(sorted(roles.items())), "distractors": distractors,
                          "layout": layout.to_dict()})


def measure(model, circuit: Circuit, seed: int = 1) -> dict[str, float]:
    """Behaviour, head scores and node faithfulness of the induction circuit on `model`.

    Loss ratio = second-copy / first-copy loss on [BOS] r r (spans 8, 16, 32); faithfulness of the
    loss drop (first - second copy) by mean ablation (ablation.py), means from another batch."""
    from mechscope.attention.detectors import duplicate_token_scores, induction_scores, previous_token_scores
    from mechscope.attention.icl import repeat_loss
    from mechscope.organisms.compiled.ablation import node_faithfulness, node_means
    from mechscope.tasks.induction import repeated_tokens

    out: dict[str, float] = {}
    with torch.no_grad():
        for span in (8, 16, 32):
            loss = repeat_loss(model, repeated_tokens(model, 32, span, seed))
            out[f"loss_ratio_span{span}"] = loss.second_copy_loss / loss.first_copy_loss
        rep = repeated_tokens(model, 32, 20, seed)
        logits = model(rep.tokens)
        second = slice(rep.second_copy.start, rep.second_copy.stop - 1)
        predicted = logits[:, second].argmax(-1)
        out["second_copy_accuracy"] = (predicted == rep.tokens[:, second.start + 1:second.stop + 1]).float().mean().item()
    roles = circuit.extra["head_roles"]
    node = {role: tuple(int(x[1:]) for x in name.split(".")) for name, role in roles.items()}
    scores = {"previous-token": previous_token_scores(model, rep.tokens), "induction": induction_scores(model, rep),
              "duplicate-token": duplicate_token_scores(model, rep)}
    for role, result in scores.items():
        if role in node:                      # a trained organism may plant only the circuit's two roles
            out[f"{role.replace('-', '_')}_score"] = result.scores[node[role]].item()
    means = node_means(model, repeated_tokens(model, 32, 20, seed + 1).tokens)
    faith = node_faithfulness(model, lambda: repeat_loss(model, rep).drop, means, circuit.heads(), circuit.mlps())
    out["faithfulness"] = faith.faithfulness
    out["ablated_fraction"] = faith.ablated_fraction
    return {k: round(v, 4) for k, v in out.items()}
