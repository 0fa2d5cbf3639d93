"""Tuned lens: equals the logit lens at init, beats it after training, saves, loads and resumes."""

import pytest
import torch

from mechscope.errors import CheckpointError, InputError
from mechscope.lens.logit_lens import logit_lens, run_lens
from mechscope.lens.tuned_lens import TunedLens
from mechscope.lens.tuned_training import TunedLensTrainConfig, compare_lenses, train_tuned_lens


def _stories_tokens(model, seed):
    g = torch.Generator().manual_seed(seed)
    text = ("Once upon a time, there was a little girl named Lily. She loved to play outside with her "
            "friend Tom. One day they found a big red ball in the park and they were very happy. ")
    stream = model.to_tokens(text * 4, prepend_bos=False)[0]
    starts = torch.randint(0, len(stream) - 32, (8,), generator=g)
    return torch.stack([stream[s:s + 32] for s in starts])


def test_tuned_lens_at_init_equals_logit_lens(tiny_gpt2_model):
    tokens = torch.randint(0, 1000, (3, 10), generator=torch.Generator().manual_seed(0))
    lens = TunedLens.for_model(tiny_gpt2_model)
    assert lens.n_points == tiny_gpt2_model.cfg.n_layers + 1
    plain = logit_lens(tiny_gpt2_model, tokens)
    with torch.no_grad():
        tuned = run_lens(tiny_gpt2_model, tokens, translate=lens.translate, lens_name="tuned lens")
    assert tuned.ce == plain.ce and tuned.kl_to_final == plain.kl_to_final
    assert tuned.example_top_tokens == plain.example_top_tokens


def test_training_beats_logit_lens_at_every_layer(stories260k):
    train, held_out = _stories_tokens(stories260k, 0), _stories_tokens(stories260k, 1)
    stories260k.hf_model.zero_grad(set_to_none=True)  # the fixture is shared; start from no grads
    before = {n: p.clone() for n, p in stories260k.hf_model.named_parameters()}
    lens, record = train_tuned_lens(stories260k, train, TunedLensTrainConfig(steps=30, lr=3e-3))
    assert record.losses[-1] < record.losses[0]
    for n, p in stories260k.hf_model.named_parameters():    # the model is untouched, grads included
        assert torch.equal(p, before[n]) and p.grad is None and p.requires_grad
    cmp, _, _ = compare_lenses(stories260k, lens, held_out)
    assert cmp.tuned_wins_everywhere
    assert all(t < lo for t, lo in zip(cmp.tuned_kl[:-1], cmp.logit_kl[:-1], strict=True))
    cmp.figure()


def test_save_load_round_trip_and_errors(tiny_gpt2_model, stories260k, tmp_path):
    lens = TunedLens.for_model(tiny_gpt2_model)
    with torch.no_grad():
        lens.A.normal_()
        lens.b.normal_()
    lens.save(tmp_path / "lens")
    back = TunedLens.load(tmp_path / "lens", tiny_gpt2_model)
    assert torch.equal(back.A, lens.A) and torch.equal(back.b, lens.b)
    with pytest.raises(InputError, match="trained on another model"):
        TunedLens.load(tmp_path / "lens", stories260k)
    with pytest.raises(CheckpointError, match="no tuned lens"):
        TunedLens.load(tmp_path / "missing")
    (tmp_path / "lens" / "tuned_lens.safetensors").write_bytes(b"truncated")
    with pytest.raises(CheckpointError, match="unreadable"):
        TunedLens.load(tmp_path / "lens")


def test_resumed_training_equals_uninterrupted(tiny_gpt2_model, tmp_path):
    tokens = torch.randint(0, 1000, (4, 16), generator=torch.Generator().manual_seed(3))
    cfg = dict(lr=1e-2, tokens_per_step=16, checkpoint_every=3)
    whole, _ = train_tuned_lens(tiny_gpt2_model, tokens, TunedLensTrainConfig(steps=6, **cfg), checkpoint_dir=tmp_path / "a")
    _, first = train_tuned_lens(tiny_gpt2_model, tokens, TunedLensTrainConfig(steps=3, **cfg), checkpoint_dir=tmp_path / "b")
    resumed, second = train_tuned_lens(tiny_gpt2_model, tokens, TunedLensTrainConfig(steps=6, **cfg),
                                       checkpoint_dir=tmp_path / "b")
    assert second.resumed_from == 3 and len(second.losses) == 3 and len(first.losses) == 3
    torch.testing.assert_close(resumed.A, whole.A)
    torch.testing.assert_close(resumed.b, whole.b)
    assert not torch.equal(whole.A, torch.zeros_like(whole.A))
