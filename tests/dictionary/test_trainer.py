"""Trainer: schedule, several SAEs at once, checkpoint/resume, data-parallel equivalence."""

import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mechscope.dictionary import SAEConfig, create_sae
from mechscope.dictionary.trainer import SAETrainer, TrainerConfig
from mechscope.errors import InputError
from tests.helpers import run_on_ranks

HERE = Path(__file__).parent


def _stream(n_steps, seed=0, d=8):
    g = torch.Generator().manual_seed(seed)
    return [{"h1": torch.randn(32, d, generator=g), "h2": torch.randn(32, 2 * d, generator=g) + 1}
            for _ in range(n_steps)]


def _saes():
    return {
        "h1_topk": create_sae(SAEConfig(d_in=8, d_sae=24, architecture="topk", k=2, hook_name="h1", dead_after_tokens=64)),
        "h2_jump": create_sae(SAEConfig(d_in=16, d_sae=24, architecture="jumprelu", hook_name="h2")),
    }


def test_lr_schedule_warmup_then_decay():
    tr = SAETrainer(_saes()["h1_topk"], TrainerConfig(steps=100, lr=1.0, warmup_steps=10, decay_fraction=0.2))
    f = [tr._lr_factor(s) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert f[50] == 1.0 and f[79] == 1.0
    assert f[80] == pytest.approx(1.0) and f[90] == pytest.approx(0.5) and f[99] == pytest.approx(0.05)


def test_several_saes_on_different_hooks_train_and_stay_unit_norm():
    saes = _saes()
    hist = SAETrainer(saes, TrainerConfig(steps=30, lr=5e-3, warmup_steps=2, log_every=5)).fit(_stream(30))
    assert hist.steps == [5, 10, 15, 20, 25, 30]
    for name, sae in saes.items():
        m = hist.metrics[name]
        assert m["loss"][-1] < m["loss"][0], name
        torch.testing.assert_close(sae.decoder_norms, torch.ones(24), atol=1e-5, rtol=0)
    assert hist.metrics["h1_topk"]["l0"][-1] <= 2
    fig = hist.figure()
    assert len(fig.data) == 8


def test_missing_hook_names_the_fix():
    sae = create_sae(SAEConfig(d_in=8, d_sae=16, k=2, hook_name="nope"))
    with pytest.raises(InputError, match="hook_name"):
        SAETrainer(sae, TrainerConfig(steps=1)).fit(_stream(1))


def test_checkpoint_resume_gives_the_same_weights(tmp_path):
    data = _stream(20)
    straight = _saes()
    SAETrainer(straight, TrainerConfig(steps=20, lr=5e-3, warmup_steps=3)).fit(data)

    resumed = _saes()
    cfg = TrainerConfig(steps=20, lr=5e-3, warmup_steps=3, checkpoint_dir=str(tmp_path), checkpoint_every=5)
    # a run killed after 10 steps: it only got 10 batches
    SAETrainer(resumed, cfg).fit(data[:10])
    assert (tmp_path / "trainer_state.pt").exists()
    fresh = _saes()  # a new process: fresh objects, state from disk
    trainer = SAETrainer(fresh, cfg)
    trainer.fit(data)
    assert trainer.step == 20
    for name in straight:
        for k, v in straight[name].state_dict().items():
            torch.testing.assert_close(fresh[name].state_dict()[k], v, msg=f"{name}.{k}")


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "trainer_state.pt").write_bytes(b"not a checkpoint")
    from mechscope.errors import CheckpointError

    with pytest.raises(CheckpointError, match="delete it"):
        SAETrainer(_saes(), TrainerConfig(steps=2, checkpoint_dir=str(tmp_path))).fit(_stream(2))


def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path, monkeypatch):
    sys.path.insert(0, str(HERE))
    try:
        import ddp_worker
    finally:
        sys.path.remove(str(HERE))
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ddp_worker.main(str(tmp_path / "one.safetensors"))  # the single-process reference, in this process
    one = load_file(str(tmp_path / "one.safetensors"))
    run_on_ranks([HERE / "ddp_worker.py", tmp_path / "two.safetensors"], 2, timeout=180)
    two = load_file(str(tmp_path / "two.safetensors"))
    assert set(one) == set(two) and {"topk.W_dec", "transcoder.W_skip", "crosscoder.input_scale"} <= set(one)
    for k in one:
        torch.testing.assert_close(two[k], one[k], atol=2e-5, rtol=1e-4, msg=k)
    # and training moved the weights (the comparison is not vacuous)
    init = create_sae(SAEConfig(d_in=8, d_sae=32, architecture="topk", k=3, seed=3))
    assert (one["topk.W_enc"] - init.W_enc.detach()).abs().max() > 1e-2
