"""Tasks: aligned clean/corrupt pairs, single-token answers, honest 'not applicable'."""

from __future__ import annotations

import pytest
import torch

from mechscope.errors import InputError, NotApplicableError
from mechscope.tasks import BUILDERS, Task, get_task
from mechscope.tasks.induction import repeated_tokens
from mechscope.tasks.ioi import ioi_task


@pytest.mark.parametrize("name", list(BUILDERS))
def test_builtin_tasks_are_well_formed(tiny_gpt2_model, name):
    model = tiny_gpt2_model
    task = get_task(model, name, n_prompts=6, seed=1)
    assert len(task) == 6
    assert task.clean_tokens.shape == task.corrupt_tokens.shape
    assert task.differing_positions().any()
    tok = model.tokenizer
    for i in range(len(task)):
        # the answer is one token and differs from the wrong answer
        assert task.answer_ids[i] != task.wrong_ids[i]
        if name != "induction":   # prompts re-tokenize to exactly the stored tokens
            assert model.to_tokens(task.clean_prompts[i])[0].tolist() == task.clean_tokens[i].tolist()
            assert model.to_tokens(task.corrupt_prompts[i])[0].tolist() == task.corrupt_tokens[i].tolist()
        assert len(tok.encode(tok.decode([int(task.answer_ids[i])]), add_special_tokens=False)) == 1
    base = task.baseline(model)
    assert base.n_prompts == 6 and 0 <= base.accuracy <= 1
    assert set(base.to_dict()) >= {"clean_metric", "corrupt_metric", "accuracy"}


def test_tasks_are_seeded(tiny_gpt2_model):
    a = ioi_task(tiny_gpt2_model, n_prompts=8, seed=3)
    b = ioi_task(tiny_gpt2_model, n_prompts=8, seed=3)
    c = ioi_task(tiny_gpt2_model, n_prompts=8, seed=4)
    assert torch.equal(a.clean_tokens, b.clean_tokens) and not torch.equal(a.clean_tokens, c.clean_tokens)


def test_ioi_positions_and_orders(tiny_gpt2_model):
    task = ioi_task(tiny_gpt2_model, n_prompts=8, template_ids=[0])
    rows = torch.arange(len(task))
    toks = task.clean_tokens
    assert torch.equal(toks[rows, task.positions["IO"]], task.answer_ids)
    assert torch.equal(toks[rows, task.positions["S1"]], task.wrong_ids)
    assert torch.equal(toks[rows, task.positions["S2"]], task.wrong_ids)
    order = task.labels["order"]
    assert set(order.tolist()) == {0, 1}
    # ABBA (0): IO comes first; BABA (1): S comes first
    assert bool(((task.positions["IO"] < task.positions["S1"]) == (order == 0)).all())


@pytest.mark.parametrize("corrupt", ["abc", "flip_s2", "order", "rename"])
def test_ioi_corruptions(tiny_gpt2_model, corrupt):
    task = ioi_task(tiny_gpt2_model, n_prompts=6, corrupt=corrupt, template_ids=[0])
    diff = task.clean_tokens != task.corrupt_tokens
    n_changed = diff.sum(1)
    expected = {"abc": 3, "flip_s2": 1, "order": 2, "rename": 3}[corrupt]
    assert bool((n_changed == expected).all()), n_changed


def test_induction_task_answer_is_in_first_copy(tiny_gpt2_model):
    task = get_task(tiny_gpt2_model, "induction", n_prompts=4, half_len=6)
    rows = torch.arange(4)
    assert torch.equal(task.clean_tokens[rows, task.positions["copied"]], task.answer_ids)
    assert torch.equal(task.corrupt_tokens[rows, task.positions["copied"]], task.wrong_ids)
    assert task.differing_positions().nonzero().flatten().tolist() == [int(task.positions["copied"][0])]
    rep = repeated_tokens(tiny_gpt2_model, 3, 5)
    assert torch.equal(rep.tokens[:, rep.start:rep.start + 5], rep.tokens[:, rep.second_copy])


def test_from_pairs_and_metrics(tiny_gpt2_model):
    model = tiny_gpt2_model
    pairs = [("The capital of France is", "The capital of Italy is", " Paris", " Rome"),
             {"clean": "The capital of Spain is", "corrupt": "The capital of Japan is", "answer": " Madrid",
              "wrong": " Tokyo"}]
    task = Task.from_pairs(model, pairs, name="capitals")
    logits = torch.zeros(2, model.cfg.d_vocab)
    logits[0, task.answer_ids[0]] = 2.0
    logits[0, task.wrong_ids[0]] = -1.0
    assert task.score(logits).tolist() == [3.0, 0.0]
    prob = Task.from_pairs(model, pairs, metric="prob").score(logits)
    assert prob[1] == pytest.approx(1 / model.cfg.d_vocab)
    kl = Task.from_pairs(model, pairs, metric="kl").score(logits, reference_logits=logits)
    assert torch.allclose(kl, torch.zeros(2), atol=1e-6)
    with pytest.raises(InputError, match="tokens"):
        Task.from_pairs(model, [("The capital of France is", "The capital of the United States is", " Paris", " DC")])
    with pytest.raises(InputError, match="one token"):
        Task.from_pairs(model, [("a b", "a c", " Parisianism", " b")])


def test_not_applicable_on_a_small_vocabulary(stories260k):
    """stories260K's 512-token vocabulary has only two single-token names (Lily, Tim), no day
    names, no capitals and no argument names: those tasks must refuse instead of running."""
    for name in ("ioi", "days", "facts", "docstring"):
        with pytest.raises(NotApplicableError):
            get_task(stories260k, name, n_prompts=4)
    task = get_task(stories260k, "induction", n_prompts=4)   # random tokens work for any vocabulary
    assert task.clean_tokens.max() < 512


def test_organism_ground_truth_is_used(tiny_gpt2_model, tmp_path):
    """A model whose spec is a directory with ground_truth.json gets the organism's names,
    templates and facts (filtered to single tokens for its tokenizer)."""
    from mechscope.organisms import make_world
    from mechscope.tasks.facts import facts_task
    from mechscope.tasks.ioi import ioi_vocabulary

    gt = make_world(seed=0)
    gt.save(tmp_path / "ground_truth.json")
    model = tiny_gpt2_model
    old = model.spec
    model.spec = str(tmp_path)
    try:
        voc = ioi_vocabulary(model)
        assert voc["source"] == "organism"
        assert set(voc["names"]) <= set(gt.heldout_names)
        task = ioi_task(model, n_prompts=4)
        assert any(p.startswith(tuple(t.split("{")[0] for t in gt.ioi_templates + gt.heldout_ioi_templates))
                   for p in task.clean_prompts)
        facts = facts_task(model, n_prompts=4)
        assert facts.clean_prompts[0] in {f["prompt"] for f in gt.facts}
    finally:
        model.spec = old


def test_organism_ground_truth_is_read_or_absent_never_swallowed(tmp_path):
    """organism:NAME reads its ground truth; a directory without one has none; a corrupt one is an error."""
    from types import SimpleNamespace

    from mechscope.errors import ModelLoadError
    from mechscope.tasks.vocab import ground_truth_for

    assert ground_truth_for(SimpleNamespace(spec="organism:tiny-gpt2")).names
    assert ground_truth_for(SimpleNamespace(spec=str(tmp_path))) is None
    assert ground_truth_for(SimpleNamespace(spec=None)) is None
    (tmp_path / "ground_truth.json").write_text('{"names": ["Ann"', encoding="utf-8")
    with pytest.raises(ModelLoadError, match="not a readable ground truth"):
        ground_truth_for(SimpleNamespace(spec=str(tmp_path)))
    (tmp_path / "ground_truth.json").write_text('["not", "an", "object"]', encoding="utf-8")
    with pytest.raises(ModelLoadError, match="not a readable ground truth"):
        ground_truth_for(SimpleNamespace(spec=str(tmp_path)))


def test_copy_losses_read_tokens_two_to_n_of_each_copy():
    """[BOS] a b c d a b c d: loss at t predicts t+1, so copy 1 is read at 1..3 and copy 2 at 5..7."""
    from mechscope.tasks.induction import copy_losses, next_token_loss

    first, second = copy_losses(torch.arange(8.0)[None], start=1, half_len=4)
    assert first.tolist() == [[1.0, 2.0, 3.0]] and second.tolist() == [[5.0, 6.0, 7.0]]
    logits = torch.randn(2, 9, 11, generator=torch.Generator().manual_seed(0))
    tokens = torch.randint(0, 11, (2, 9), generator=torch.Generator().manual_seed(1))
    expected = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 11), tokens[:, 1:].reshape(-1),
                                                 reduction="none").view(2, 8)
    torch.testing.assert_close(next_token_loss(logits, tokens), expected)


def test_to_single_token_names_what_it_checks(tiny_gpt2_model):
    assert tiny_gpt2_model.to_single_token(" the") == tiny_gpt2_model.to_tokens(" the", prepend_bos=False)[0, 0]
    with pytest.raises(InputError, match="answer ' Parisianism' is 3 tokens.*must be one token"):
        tiny_gpt2_model.to_single_token(" Parisianism", what="answer")


@pytest.mark.parametrize("which", ["tiny_gpt2_model", "stories260k"])
def test_answer_logits_of_a_few_tokens_are_those_columns(which, request):
    """forward_to_answer(vocab=ids) unembeds only those tokens: the same numbers as the full head's columns."""
    from mechscope.tasks.answer import forward_to_answer

    model = request.getfixturevalue(which)
    tokens = torch.randint(0, model.cfg.d_vocab, (3, 9), generator=torch.Generator().manual_seed(0))
    ids = [5, 1, 17, 5]
    full, _ = forward_to_answer(model, tokens, [], -1, grad=False)
    few, _ = forward_to_answer(model, tokens, [], -1, grad=False, vocab=ids)
    assert few.shape == (3, 4)
    torch.testing.assert_close(few, full[:, ids], atol=1e-5, rtol=1e-5)
