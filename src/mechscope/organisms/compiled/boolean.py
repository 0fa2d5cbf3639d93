"""compiled-boolean: MLP units that compute known AND / OR gates of binary token features.

Task: every token of the vocabulary carries 6 binary features f0..f5 (token ``x010011`` has f1, f4
and f5 on). Block 0's MLP computes 16 gates, each the AND or the OR of two features; the gates are
written along known residual directions and read out as logits: logit(``G{k}``) = 10 gate_k. A gate
is read as true when its logit exceeds 5.

Construction (GPT-2 blocks, 1 layer, 1 head with zero weights, d_model 48, activation ReLU6; in
logical coordinates of residual.py; which pairs and which gate types are drawn from the seed):

1. Embedding: token x writes its 6 feature bits into ``feature`` (0 or 1 each); every position writes
   the constant C (LayerNorm is then the identity on logical coordinates, residual.py). Attention is
   zero, so positions do not interact.
2. MLP unit k (k < 16) reads its two parents a, b: pre = 12 (a + b) - 16 for AND, 12 (a + b) - 4
   for OR; ReLU6 clips pre to {0, 6} exactly (AND: 6 iff both; OR: 6 iff either). It writes
   post / 6 into ``gate[k]``: the gate's output direction holds exactly 0 or 1.
3. Distractor units 16..21 copy one feature each (pre = 12 a - 4) into ``scratch``, which nothing reads.
4. Unembedding: logit(G_k) = 10 gate[k]; every other token's logit is 0.
"""

from __future__ import annotations

import itertools
import random

import torch

from mechscope.organisms.compiled.circuit import Circuit
from mechscope.organisms.compiled.gpt2_writer import SPECIAL, UNKNOWN, CompiledGPT2
from mechscope.organisms.compiled.residual import Layout

NAME = "compiled-boolean"
CLAIMS = ("C15",)   # the claims this organism is the planted ground truth for
N_FEATURES, N_GATES, D_MODEL, N_CTX = 6, 16, 48, 32
LOGIT = 10.0
THRESHOLD = LOGIT / 2
PRE = {"AND": (12.0, -16.0), "OR": (12.0, -4.0), "COPY": (12.0, -4.0)}   # (weight per parent, bias)


def feature_tokens() -> list[str]:
    """The 64 feature tokens: 'x' + the bits f0..f5."""
    return ["x" + "".join(bits) for bits in itertools.product("01", repeat=N_FEATURES)]


def _gates(seed: int) -> list[dict]:
    """16 gates: 8 AND and 8 OR over distinct feature pairs drawn from the seed."""
    rng = random.Random(seed)
    all_pairs = list(itertools.combinations(range(N_FEATURES), 2))
    pairs = rng.sample(all_pairs, N_GATES // 2) + rng.sample(all_pairs, N_GATES // 2)   # AND pairs, OR pairs
    kinds = ["AND"] * (N_GATES // 2) + ["OR"] * (N_GATES // 2)
    order = list(range(N_GATES))
    rng.shuffle(order)
    return [{"gate": kinds[i], "parents": [f"f{pairs[i][0]}", f"f{pairs[i][1]}"]} for i in order]


def compile_boolean(seed: int = 0) -> tuple[CompiledGPT2, Circuit]:
    layout = Layout(D_MODEL)
    layout.add("feature", N_FEATURES)
    layout.add("gate", N_GATES)
    layout.add("scratch", N_FEATURES)
    words = feature_tokens()
    vocab = [SPECIAL, UNKNOWN] + words + [f"G{k}" for k in range(N_GATES)]
    gates = _gates(seed)
    net = CompiledGPT2(layout, vocab, n_layer=1, n_head=1, n_ctx=N_CTX, d_mlp=N_GATES + N_FEATURES,
                       activation="relu6")
    for word in words:
        for f, bit in enumerate(word[1:]):
            net.embed[net.token_id(word), layout.index("feature", f)] = float(bit)
    mlp = net.mlps[0]
    units = [(g["gate"], [int(p[1:]) for p in g["parents"]], layout.index("gate", k)) for k, g in enumerate(gates)]
    units += [("COPY", [f], layout.index("scratch", f)) for f in range(N_FEATURES)]
    for unit, (kind, parents, out) in enumerate(units):
        weight, bias = PRE[kind]
        for f in parents:
            mlp["mlp_in"][layout.index("feature", f), unit] = weight
        mlp["mlp_bias"][unit] = bias
        mlp["mlp_out"][unit, out] = 1.0 / 6.0
    for k in range(N_GATES):
        net.unembed[layout.index("gate", k), net.token_id(f"G{k}")] = LOGIT
    return net, _circuit(gates, layout)


def _circuit(gates: list[dict], layout: Layout) -> Circuit:
    def direction(slot, i):
        return [round(x, 8) for x in layout.direction(slot, i).tolist()]

    units = [{"units": [k], "gate": g["gate"], "parents": g["parents"], "role": f"{g['gate']}({', '.join(g['parents'])})",
              "output": f"gate{k}", "readout_token": f"G{k}"} for k, g in enumerate(gates)]
    return Circuit(
        organism=NAME, task="boolean gates: logit(G_k) > 5 iff gate k of the token's features is true",
        nodes={"input": "token features f0..f5 (0/1) along known directions",
               "m0": "16 ReLU6 units, one per gate (units 0..15); units 16..21 are distractors",
               "logits": "logit(G_k) = 10 * gate_k"},
        edges={"input->m0": "each gate unit reads its two parent features",
               "m0->logits": "each gate unit writes 0/1 along its output direction, read by G_k"},
        mlp_units={"m0": units},
        extra={"layer": 0,
               "distractor_units": {"m0": [{"units": [N_GATES + f], "role": f"COPY(f{f}) into scratch, unread"}
                                           for f in range(N_FEATURES)]},
               "feature_directions": {f"f{f}": direction("feature", f) for f in range(N_FEATURES)},
               "gate_directions": {f"gate{k}": direction("gate", k) for k in range(N_GATES)},
               "layout": layout.to_dict()})


def gate_truth(model, circuit: Circuit, tokens: torch.Tensor) -> torch.Tensor:
    """[batch pos n_gates] bool: the true value of every gate at every position (from token strings)."""
    words = model.tokenizer.convert_ids_to_tokens(tokens.flatten().tolist())
    bits = torch.tensor([[w.startswith("x") and w[1 + f] == "1" for f in range(N_FEATURES)] for w in words])
    out = []
    for unit in circuit.mlp_units["m0"]:
        a, b = (bits[:, int(p[1:])] for p in unit["parents"])
        out.append(a & b if unit["gate"] == "AND" else a | b)
    return torch.stack(out, -1).view(*tokens.shape, -1)


def random_feature_tokens(model, n_seq: int = 32, length: int = 16, seed: int = 0,
                          p_on: float = 0.5) -> torch.Tensor:
    """[n_seq 1 + length]: BOS then random feature tokens, each feature on independently with
    probability p_on (0.5: all 64 tokens equally likely). Sparse dictionaries need p_on well below
    0.5 to find the features (bench/bench_gates_boolean.py): at 0.5 the MLP input is 64 equally
    likely points and no dictionary recovers the 6 directions."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.tensor(model.tokenizer.convert_tokens_to_ids(feature_tokens()))   # itertools.product order
    if p_on == 0.5:   # the draw the shipped metrics (circuit.json) were measured on
        body = ids[torch.randint(0, len(ids), (n_seq, length), generator=gen)]
    else:
        bits = (torch.rand(n_seq, length, N_FEATURES, generator=gen) < p_on).long()     # [n_seq length 6]
        body = ids[(bits * 2 ** torch.arange(N_FEATURES - 1, -1, -1)).sum(-1)]          # f0 is the first bit
    return torch.cat([torch.zeros(n_seq, 1, dtype=torch.long), body], 1)


def gate_accuracy(model, circuit: Circuit, tokens: torch.Tensor) -> float:
    """Fraction of (position, gate) whose logit(G_k) > 5 matches the truth (BOS position excluded)."""
    ids = model.tokenizer.convert_tokens_to_ids([u["readout_token"] for u in circuit.mlp_units["m0"]])
    logits = model(tokens)[:, 1:, ids]
    return ((logits > THRESHOLD) == gate_truth(model, circuit, tokens)[:, 1:]).float().mean().item()


def measure(model, circuit: Circuit, seed: int = 1) -> dict[str, float]:
    """Gate accuracy, and unit-level faithfulness by mean-ablating the MLP units (ablation.py)."""
    from mechscope.organisms.compiled.ablation import node_means, unit_faithfulness

    tokens = random_feature_tokens(model, seed=seed)
    means = node_means(model, random_feature_tokens(model, seed=seed + 1))
    gate_units = [u for entry in circuit.mlp_units["m0"] for u in entry["units"]]
    with torch.no_grad():
        out = {"gate_accuracy": gate_accuracy(model, circuit, tokens)}
        faith = unit_faithfulness(model, lambda: gate_accuracy(model, circuit, tokens), means, {0: gate_units})
    out["faithfulness"] = faith.faithfulness
    out["ablated_accuracy"] = faith.circuit_ablated
    out["ablated_fraction"] = faith.ablated_fraction
    return {k: round(v, 4) for k, v in out.items()}
