"""On the shipped organisms (planted IOI, induction, facts), the detectors and patching must find
what was planted: tiny-gpt2's IOI head and fact flow, induction-2l's shifted induction circuit."""

from __future__ import annotations

import pytest
import torch


def _organism():
    from mechscope.organisms import list_shipped

    if "tiny-gpt2" not in list_shipped():
        pytest.skip("tiny-gpt2 is not shipped")
    import mechscope

    return mechscope.load("organism:tiny-gpt2", device="cpu")


@pytest.fixture(scope="module")
def organism():
    return _organism()


def test_detectors_find_the_induction_circuit_of_induction_2l():
    """induction-2l copies repeated random spans (second-copy loss < 0.3 x first). The detectors must
    find the heads that do it, whatever lag the model chose: induction heads in layer 1 that attend
    d after the earlier occurrence, and a layer-0 head that looks back d (it tells each key which token
    sat d before it, K-composition). Mean-ablating those layer-0 heads must break the copying."""
    from mechscope.attention import head_report, repeat_loss_with_heads_ablated
    from mechscope.organisms import list_shipped
    from mechscope.tasks.induction import repeated_tokens

    if "induction-2l" not in list_shipped():
        pytest.skip("induction-2l is not shipped")
    import mechscope

    torch.set_num_threads(1)
    model = mechscope.load("organism:induction-2l", device="cpu")
    report = head_report(model, n_sequences=8, half_len=20)
    assert report.repeat.second_copy_loss <= 0.3 * report.repeat.first_copy_loss
    induction = report.scores["lagged-induction"]
    layer, head, score = induction.top(1)[0]
    lag = int(induction.lags[layer, head])
    assert layer == 1 and score >= 0.5, induction.top(4)
    lookback = report.scores["lookback"]
    matchers = [(0, h) for h in range(model.cfg.n_heads)  # lag 1: the textbook previous-token head
                if lookback.lags[0, h] == lag and lookback.scores[0, h] >= 0.3]
    assert matchers, (lag, lookback.top(4))
    rep = repeated_tokens(model, 8, 20, seed=0)
    broken = repeat_loss_with_heads_ablated(model, rep, matchers).second_copy_loss
    assert broken >= 0.5 * report.repeat.first_copy_loss, (matchers, broken, report.repeat)


def _assert_flow(values: torch.Tensor, source: torch.Tensor, what: str) -> None:
    """values: [layer, pos] fraction of the clean-corrupt gap restored by patching resid_pre there.

    The information sits at the changed tokens at the bottom, and at every layer it is found only
    there or at the last position (where the answer is read out), with a growing share at the end.
    """
    assert torch.isfinite(values).all()
    at_source = values[:, source].sum(-1)
    at_end = values[:, -1]
    assert at_source[0] > 0.9, (what, at_source)
    assert ((at_source + at_end) > 0.85).all(), (what, at_source + at_end)
    assert at_end[-1] > at_end[0] + 0.1, (what, at_end)


def test_organism_ioi_flow_and_the_head_that_carries_it(organism):
    """The shipped tiny-gpt2 solves IOI without GPT-2-small's late name movers (name-mover scores
    are ~0): patching finds one layer-0 head that reads the names from the final position and
    carries the whole S2 effect there. The test checks that patching localises it, whatever head."""
    from mechscope.patching import activation_patching
    from mechscope.tasks import ioi_task

    task = ioi_task(organism, n_prompts=16, template_ids=[0], corrupt="flip_s2")
    assert task.baseline(organism).accuracy >= 0.9
    grid = activation_patching(organism, task, "resid_pre")
    _assert_flow(grid.values, task.positions["S2"][:1], "ioi")
    heads = activation_patching(organism, task, "z")
    layer, head = divmod(int(heads.values.argmax()), heads.values.shape[1])
    assert heads.values[layer, head] > 0.5, heads.values
    _, cache = organism.run_with_cache(task.clean_tokens, names=[f"blocks.{layer}.attn.hook_pattern"])
    final = cache["pattern", layer][:, head, -1]                         # [prompt key]
    names = torch.cat([task.positions["IO"], task.positions["S1"], task.positions["S2"]]).unique()
    assert final[:, names].sum(-1).mean() > 0.3                          # it reads the names


def test_organism_fact_is_localised(organism):
    from mechscope.patching import activation_patching
    from mechscope.tasks import facts_task

    task = facts_task(organism, n_prompts=16)
    assert task.baseline(organism).accuracy >= 0.9
    grid = activation_patching(organism, task, "resid_pre")
    subject = task.differing_positions().nonzero().flatten()
    _assert_flow(grid.values, subject, "facts")
