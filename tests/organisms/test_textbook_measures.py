"""The textbook-mechanism measurements of mechanisms.json, scored against compiled organisms whose
circuit is planted by construction (circuit.json names the heads)."""

import pytest

from mechscope.organisms.mechanisms import name_movers, textbook_induction


def _load(name):
    import torch

    import mechscope

    torch.set_num_threads(1)
    return mechscope.load(f"organism:{name}")


def _role(name: str, role: str) -> str:
    from mechscope.organisms.compiled import load_circuit

    heads = [node for node, r in load_circuit(name).extra["head_roles"].items() if r == role]
    assert len(heads) == 1, (role, heads)
    return heads[0]


def test_textbook_induction_finds_the_planted_lag1_head_and_its_causal_share():
    name = "compiled-induction"
    planted = _role(name, "induction")
    got = textbook_induction(_load(name))
    assert got["spans"] == [8, 16, 32]
    assert all(r < 0.05 for r in got["ratio"]), got["ratio"]          # the planted circuit copies exactly
    assert got["lag1_head"] == [planted] * 3 and min(got["lag1_score"]) > 0.9
    assert got["top_head"]["head"] == planted and got["top_head"]["lag"] == 1
    # mean ablation (mean over the same rows) keeps 1/16 of each answer: on a small vocabulary it still helps
    assert got["top_head"]["ablation_share"] > 0.3


def test_name_movers_rank_the_planted_name_mover_first():
    from mechscope.tasks.ioi import ioi_task

    name = "compiled-ioi"
    model = _load(name)
    movers = name_movers(model, ioi_task(model, n_prompts=32, seed=5, template_ids=[0]), top=6)
    rows = movers["by_score"]
    assert rows[0]["head"] == _role(name, "name-mover") and rows[0]["score"] > 0.5
    assert movers["by_direct_effect"][0]["head"] == _role(name, "name-mover")
    assert movers["by_direct_effect"][0]["attention_to_io"] > movers["by_direct_effect"][0]["attention_to_s"]
    negative = next(r for r in rows if r["head"] == _role(name, "negative-name-mover"))
    assert negative["score"] < 0 and negative["logit_effect"] < 0
    assert rows == sorted(rows, key=lambda r: -r["score"])


@pytest.mark.parametrize("top", [1, 3])
def test_name_movers_returns_top_rows(top):
    from mechscope.tasks.ioi import ioi_task

    model = _load("compiled-ioi")
    movers = name_movers(model, ioi_task(model, n_prompts=8, seed=1, template_ids=[0]), top=top)
    assert len(movers["by_score"]) == len(movers["by_direct_effect"]) == top
