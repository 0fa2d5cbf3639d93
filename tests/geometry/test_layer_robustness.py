"""Layer deletion / swapping through the block list, against hook-based skips and a manual re-run."""

import pytest
import torch

from mechscope.errors import InputError
from mechscope.geometry.layer_robustness import layer_robustness, reordered_layers


def _tokens(vocab, seed=0):
    return torch.randint(3, vocab, (3, 12), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("fixture", ["tiny_gpt2_model", "stories260k"])
def test_deleting_no_layer_changes_nothing(fixture, request):
    m = request.getfixturevalue(fixture)
    tokens = _tokens(m.cfg.d_vocab)
    before = m(tokens)
    with reordered_layers(m, range(m.cfg.n_layers)):
        same = m(tokens)
    assert torch.equal(before, same)


def _skip_hooks(layer):
    """Hooks that make block `layer` a no-op: resid_post := resid_pre."""
    saved = {}

    def keep(x, hook):
        saved["x"] = x

    return {f"blocks.{layer}.hook_resid_pre": keep, f"blocks.{layer}.hook_resid_post": lambda x, hook: saved["x"]}


def test_deleting_a_layer_equals_skipping_it_with_hooks(stories260k):
    m = stories260k
    tokens = _tokens(m.cfg.d_vocab, seed=1)
    for layer in (0, 2, m.cfg.n_layers - 1):
        skipped = m.run_with_hooks(tokens, fwd=_skip_hooks(layer))
        order = [i for i in range(m.cfg.n_layers) if i != layer]
        with reordered_layers(m, order):
            deleted = m(tokens)
        torch.testing.assert_close(deleted, skipped, rtol=1e-5, atol=1e-5)


def test_swap_is_undone_even_after_an_error(tiny_gpt2_model):
    m = tiny_gpt2_model
    blocks = list(m.layers)
    with pytest.raises(RuntimeError), reordered_layers(m, [1, 0]):
        assert m.layers[0] is blocks[1]
        raise RuntimeError("boom")
    assert list(m.layers) == blocks
    with pytest.raises(InputError):
        with reordered_layers(m, [0, 5]):
            pass
    assert list(m.layers) == blocks


def test_robustness_result_on_stories260k(stories260k):
    tokens = stories260k.to_tokens(["Once upon a time, there was a little girl named Lily. She loved to play "
                                    "outside with her friend Tom. One day they found a big red ball."])
    r = layer_robustness(stories260k, tokens)
    assert len(r.deleted_agreement) == 5 and len(r.swapped_agreement) == 4
    assert all(0 <= a <= 1 for a in r.deleted_agreement + r.swapped_agreement)
    assert r.deleted_ce[0] > r.base_ce + 1      # removing the first block hurts a lot on a story
    assert r.deleted_agreement[0] == min(r.deleted_agreement)
    assert r.n_tokens == tokens[:, 1:].numel()
    r.figure()


@pytest.mark.parametrize("fixture", ["tiny_gpt2_model", "stories260k"])
def test_edits_from_the_cached_residual_equal_whole_model_reruns(fixture, request):
    """Each edit runs only the blocks from the edited one on (from the cached residual stream); the
    numbers equal a whole forward of the edited block list, for deletions (the last block included)
    and swaps."""
    m = request.getfixturevalue(fixture)
    tokens = _tokens(m.cfg.d_vocab, seed=2)
    n = m.cfg.n_layers
    r = layer_robustness(m, tokens, batch_size=2)
    with torch.no_grad():
        base = m(tokens)
        top = base[:, :-1].argmax(-1)

    def score(order):
        with torch.no_grad(), reordered_layers(m, order):
            logp = torch.log_softmax(m(tokens)[:, :-1].float(), -1)
        return (float((logp.argmax(-1) == top).float().mean()),
                float(-logp.gather(-1, tokens[:, 1:, None]).mean()))

    for i, layer in enumerate(range(n)):
        agree, ce = score([j for j in range(n) if j != layer])
        assert r.deleted_agreement[i] == pytest.approx(agree, abs=1e-6)
        assert r.deleted_ce[i] == pytest.approx(ce, rel=1e-4, abs=1e-4)
    for i, layer in enumerate(range(n - 1)):
        order = list(range(n))
        order[layer], order[layer + 1] = order[layer + 1], order[layer]
        agree, ce = score(order)
        assert r.swapped_agreement[i] == pytest.approx(agree, abs=1e-6)
        assert r.swapped_ce[i] == pytest.approx(ce, rel=1e-4, abs=1e-4)
    assert r.base_ce == pytest.approx(score(list(range(n)))[1], rel=1e-5)
    assert layer_robustness(m, tokens, swaps=False).swapped_agreement == []
