"""The head/circuit claims (C10-C13, C18, C19) read the same verdict under the scaled `quick` budget as
under `full` on a trained organism, and under a budget that forces the deep-model paths (attribution
screen, sampled layers, no swaps, halved text) on it too; their cheap pieces are checked directly."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from mechscope.claims.base import Budget
from mechscope.claims.head_circuit import settled
from mechscope.tasks.base import Task, TaskBaseline

IDS = ("C10", "C11", "C12", "C13", "C18", "C19")


@pytest.mark.slow
def test_quick_full_and_deep_path_verdicts_agree_on_tiny_gpt2():
    import mechscope
    from mechscope.claims.registry import run_claims

    model = mechscope.load("organism:tiny-gpt2")
    assert model.cfg.n_layers > 2
    deep = dataclasses.replace(Budget.named("quick"), name="quick-deep", max_layers=2)  # the real-model paths
    verdicts = {b.name: {r.id: r.verdict for r in run_claims(model, ids=list(IDS), budget=b)}
                for b in (Budget.named("quick"), Budget.named("full"), deep)}
    assert verdicts["quick"] == verdicts["full"], verdicts
    assert verdicts["quick-deep"] == verdicts["full"], verdicts
    assert all(v in ("supported", "not supported", "inconclusive") for v in verdicts["quick"].values()), verdicts


def _baseline(right_minus_wrong: list[float]) -> tuple[Task, TaskBaseline]:
    n = len(right_minus_wrong)
    logits = torch.zeros(n, 5)
    logits[:, 1] = torch.tensor(right_minus_wrong)
    task = Task("t", torch.zeros(n, 3, dtype=torch.long), torch.zeros(n, 3, dtype=torch.long),
                answer_ids=torch.ones(n, dtype=torch.long), wrong_ids=torch.zeros(n, dtype=torch.long))
    return task, task.baseline_from_logits(logits, logits)


def test_baseline_is_settled_only_when_no_threshold_is_inside_the_interval():
    task, base = _baseline([2.0] * 60 + [-1.0] * 4)           # accuracy 0.94, logit diff 1.81
    assert base.accuracy == pytest.approx(60 / 64)
    assert settled(task, base, {"accuracy": (0.7,), "logit_diff": (1.0,)})
    assert not settled(task, base, {"accuracy": (0.9,)})          # 0.9 lies inside the accuracy interval
    assert not settled(task, base, {"logit_diff": (1.8,)})
    task, base = _baseline([1.0, -1.0] * 32)                      # a random model: accuracy 0.5
    assert settled(task, base, {"accuracy": (0.7, 0.9)}) and not settled(task, base, {"accuracy": (0.5,)})


def test_baseline_doubles_its_prompts_only_until_settled(monkeypatch):
    """64 prompts at accuracy 54/64 hold the 0.8 threshold inside their interval; the next 64 are all right,
    so 128 prompts (accuracy 0.92, interval above 0.8) settle it: the last 128 of 256 are never run."""
    from mechscope.claims import head_circuit

    diffs = torch.tensor([1.0] * 54 + [-1.0] * 10 + [1.0] * 192)
    n = len(diffs)
    tokens = torch.arange(n)[:, None].repeat(1, 3)                 # column 0 names the prompt
    task = Task("t", tokens, tokens.clone(), answer_ids=torch.ones(n, dtype=torch.long),
                wrong_ids=torch.zeros(n, dtype=torch.long))
    seen = []

    def fake_answer_logits(model, toks, answer_pos=-1):
        seen.extend(toks[:, 0].tolist())
        logits = torch.zeros(len(toks), 5)
        logits[:, 1] = diffs[toks[:, 0]]
        return logits

    monkeypatch.setattr(head_circuit, "answer_logits", fake_answer_logits)
    base = head_circuit.settled_baseline(None, task, {"accuracy": (0.8,)}, Budget.named("quick"))
    assert base.n_prompts == 128 and base.accuracy == pytest.approx(118 / 128)
    assert sorted(set(seen)) == list(range(128))
    seen.clear()
    assert head_circuit.settled_baseline(None, task, {"accuracy": (0.8,)}, Budget.named("full")).n_prompts == n
    assert sorted(set(seen)) == list(range(n))


def test_c12_rise_width_is_exact_under_sampled_layers():
    """With two of four layers sampled the rise first reads as 3 blocks wide (an upper bound that would
    flip the verdict); the second sweep inside the rise gives the width every layer gives."""
    import mechscope
    from mechscope.claims import c12_information_movement as c12

    model = mechscope.load("organism:tiny-gpt2")
    every = c12.measure(model, Budget.named("quick")).metrics
    sampled = c12.measure(model, dataclasses.replace(Budget.named("quick"), max_layers=2)).metrics
    assert every["patched_layers"] == list(range(model.cfg.n_layers))
    assert {k: sampled[k] for k in c12.READS} == {k: every[k] for k in c12.READS}
    assert c12.verdict(sampled, {"gap": 0.0}) == c12.verdict(every, {"gap": 0.0}) == "supported"


def test_c12_does_not_refine_the_rise_of_a_gap_it_cannot_read():
    """A random-init model does not do the task (gap ~0): its shares are noise, the verdict is inconclusive
    whatever the rise, so only the sampled layers are patched (refining patched every layer of the noise)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from mechscope import HookedModel
    from mechscope.claims import c12_information_movement as c12
    from tests.helpers import gpt2_tokenizer

    torch.manual_seed(0)
    tokenizer = gpt2_tokenizer()
    hf = GPT2LMHeadModel(GPT2Config(n_layer=6, n_embd=32, n_head=2, n_positions=128, vocab_size=len(tokenizer)))
    model = HookedModel.from_hf(hf.eval(), tokenizer)
    budget = dataclasses.replace(Budget.named("quick"), max_layers=2)
    metrics = c12.measure(model, budget).metrics
    assert metrics["gap"] < c12.MIN_GAP and not metrics["rise_refined"]
    assert metrics["patched_layers"] == budget.layers(6) == [0, 5]
    assert c12.verdict(metrics, {"gap": 0.0}) == "inconclusive"
