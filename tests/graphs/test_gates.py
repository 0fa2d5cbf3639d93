"""Gate classification against planted boolean circuits: 16 known gates over 8 parent features are
all classified (with the true parents and with parents found by co-activation), and independent
latents are not called gates."""

import torch

from mechscope.graphs.gates import classify_gates, classify_table, conditional_table

KINDS = ["AND"] * 6 + ["OR"] * 6 + ["pass-through"] * 4


def _planted(n=6000, noise=0.02, seed=0):
    gen = torch.Generator().manual_seed(seed)
    parents = torch.rand(n, 8, generator=gen) < 0.3
    pairs = [(i, j) for i in range(8) for j in range(i + 1, 8)]
    order = torch.randperm(len(pairs), generator=gen)[:16].tolist()
    chosen = [pairs[k] for k in order]
    cols = []
    for kind, (a, b) in zip(KINDS, chosen, strict=True):
        pa, pb = parents[:, a], parents[:, b]
        cols.append(pa & pb if kind == "AND" else pa | pb if kind == "OR" else pa)
    children = torch.stack(cols, 1)
    flip = torch.rand(children.shape, generator=gen) < noise
    return parents, children ^ flip, chosen


def test_conditional_table_by_hand():
    a = torch.tensor([0, 0, 1, 1, 1, 0], dtype=torch.bool)
    b = torch.tensor([0, 1, 0, 1, 1, 1], dtype=torch.bool)
    c = torch.tensor([0, 1, 0, 1, 0, 0], dtype=torch.bool)
    table, counts = conditional_table(c, a, b)
    assert counts.tolist() == [1, 2, 1, 2] and table.tolist() == [0.0, 0.5, 0.0, 0.5]
    assert classify_table(torch.tensor([0.0, 0.1, 0.15, 0.9]), torch.full((4,), 50))[0] == "AND"
    assert classify_table(torch.tensor([0.0, 0.1, 0.25, 0.9]), torch.full((4,), 50))[0] == "other"
    assert classify_table(torch.tensor([0.0, 0.0, 0.0, 1.0]), torch.tensor([50, 50, 4, 50]))[0] == "undetermined"


def test_all_sixteen_planted_gates_with_true_parents():
    parents, children, chosen = _planted()
    result = classify_gates(children, parents, torch.tensor(chosen))
    assert result.kinds == KINDS


def test_all_sixteen_planted_gates_with_coactivation_parents():
    parents, children, chosen = _planted(seed=1)
    result = classify_gates(children, parents)
    assert result.kinds == KINDS
    for kind, found, true in zip(KINDS, result.parents, chosen, strict=True):
        if kind != "pass-through":
            assert set(found) == set(true)
    assert result.share_explained == 1.0 and result.share_gates == 12 / 16


def test_independent_latents_are_not_gates():
    parents, _, _ = _planted(seed=2)
    gen = torch.Generator().manual_seed(3)
    unrelated = torch.rand(parents.shape[0], 40, generator=gen) < 0.3
    result = classify_gates(unrelated, parents)
    assert result.share_explained <= 0.1
