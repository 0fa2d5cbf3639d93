"""train_on_model / train_saes (dictionary/pipeline.py) against the same training written out by hand."""

from __future__ import annotations

import pytest
import torch

from mechscope.data.activation_store import ShuffleBuffer, capture_activations, stream_activations
from mechscope.dictionary import SAEConfig, SAETrainer, TrainerConfig, create_sae
from mechscope.dictionary.pipeline import (
    SAEPipelineConfig,
    harvest_in_memory,
    train_on_model,
    train_saes,
    training_hooks,
)
from mechscope.errors import InputError

HOOKS = ("blocks.0.hook_resid_post", "blocks.1.hook_mlp_out")
STEPS = 4


def _tokens(model):
    return torch.randint(0, model.cfg.d_vocab, (32, 16), generator=torch.Generator().manual_seed(0))


def _by_hand(model, tokens, batches) -> dict:
    saes = {f"{a}@{h}": create_sae(SAEConfig(d_in=model.cfg.d_model, expansion_factor=2, architecture=a, k=4,
                                             hook_name=h, model_name=model.spec, seed=3))
            for h in HOOKS for a in ("topk", "relu_l1")}
    SAETrainer(saes, TrainerConfig(steps=STEPS, lr=1e-3, warmup_steps=1, show_progress=False)).fit(batches)
    return saes


def _cfg(**kw) -> SAEPipelineConfig:
    return SAEPipelineConfig(hooks=HOOKS, architectures=("topk", "relu_l1"), expansion_factor=2, k=4,
                             batch_size=64, seed=3, **kw)


def _assert_same(saes, expected):
    assert list(saes) == list(expected) == ["topk@blocks.0.hook_resid_post", "relu_l1@blocks.0.hook_resid_post",
                                            "topk@blocks.1.hook_mlp_out", "relu_l1@blocks.1.hook_mlp_out"]
    for name, sae in saes.items():
        assert sae.cfg.hook_name == name.split("@")[1] and sae.cfg.d_in == 64
        for (pname, p), q in zip(sae.state_dict().items(), expected[name].state_dict().values(), strict=True):
            torch.testing.assert_close(p, q, rtol=0, atol=0, msg=f"{name}.{pname}")


TRAINER = TrainerConfig(steps=STEPS, lr=1e-3, warmup_steps=1, show_progress=False)


def test_memory_mode_equals_harvest_once_and_reshuffle_each_epoch(tiny_gpt2_model):
    model, tokens = tiny_gpt2_model, _tokens(tiny_gpt2_model)
    saes, history = train_on_model(model, tokens, _cfg(activations="memory", shuffle_buffer_tokens=256), TRAINER)
    acts = [capture_activations(model, b, list(HOOKS)) for b in tokens.split(16)]

    def epochs():
        for epoch in range(100):
            yield from ShuffleBuffer(256, 64, seed=3 + epoch)(iter(acts))
    _assert_same(saes, _by_hand(model, tokens, epochs()))
    assert set(history.names) == set(saes) and history.steps[-1] <= STEPS


def test_harvested_activations_train_the_same_saes_without_a_forward_pass(tiny_gpt2_model):
    model, tokens = tiny_gpt2_model, _tokens(tiny_gpt2_model)
    cfg = _cfg(activations="memory", shuffle_buffer_tokens=256)
    acts = harvest_in_memory(model, tokens, training_hooks(cfg))
    torch.testing.assert_close(torch.cat([a[HOOKS[0]] for a in acts]),
                               capture_activations(model, tokens, [HOOKS[0]])[HOOKS[0]], rtol=0, atol=1e-6)
    forwards = []
    with model.hooks(fwd={"hook_embed": lambda act, hook: forwards.append(1)}):
        saes, _ = train_on_model(model, tokens, cfg, TRAINER, activations=acts)
    assert not forwards
    _assert_same(saes, train_on_model(model, tokens, cfg, TRAINER)[0])
    with pytest.raises(InputError, match="lack hooks"):
        train_on_model(model, tokens, cfg, TRAINER, activations=[{HOOKS[0]: a[HOOKS[0]]} for a in acts])
    with pytest.raises(InputError, match="memory"):
        train_on_model(model, tokens, _cfg(), TRAINER, activations=acts)


def test_stream_mode_equals_streaming_by_hand(tiny_gpt2_model):
    model, tokens = tiny_gpt2_model, _tokens(tiny_gpt2_model)
    saes, _ = train_on_model(model, tokens, _cfg(shuffle_buffer_tokens=128), TRAINER)

    def epochs():
        for epoch in range(100):
            yield from stream_activations(model, tokens.split(16), list(HOOKS), batch_size=64,
                                          shuffle_buffer_tokens=128, seed=3 + epoch)
    _assert_same(saes, _by_hand(model, tokens, epochs()))


def test_store_mode_trains_from_disk(tiny_gpt2_model, tmp_path):
    model, tokens = tiny_gpt2_model, _tokens(tiny_gpt2_model)
    saes, _ = train_on_model(model, tokens, _cfg(store=str(tmp_path / "store")), TRAINER)
    assert (tmp_path / "store").is_dir() and len(saes) == 4
    assert all(torch.isfinite(p).all() for sae in saes.values() for p in sae.parameters())


def test_memory_mode_refuses_data_parallel_and_empty_configs(tiny_gpt2_model):
    with pytest.raises(InputError, match="store=DIR"):
        train_on_model(tiny_gpt2_model, _tokens(tiny_gpt2_model), _cfg(activations="memory"), TRAINER, world_size=2)
    with pytest.raises(InputError, match="at least one hook"):
        SAEPipelineConfig(hooks=())


def test_train_saes_on_hand_made_activations():
    x = torch.randn(4096, 8, generator=torch.Generator().manual_seed(1))
    batches = (x[i:i + 256] for i in range(0, 4096, 256))
    saes, history = train_saes({"a": SAEConfig(d_in=8, d_sae=16, k=2)}, batches, TRAINER)
    expected = create_sae(SAEConfig(d_in=8, d_sae=16, k=2))
    SAETrainer(expected, TRAINER).fit(x[i:i + 256] for i in range(0, 4096, 256))
    torch.testing.assert_close(saes["a"].W_dec, expected.W_dec, rtol=0, atol=0)
    assert history.names == ["a"]
