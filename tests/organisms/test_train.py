import json

import pytest
import torch
from safetensors.torch import load_file

from mechscope.errors import CheckpointError, InputError, ModelLoadError
from mechscope.organisms.batches import batch_for_step
from mechscope.organisms.checkpoint import load_checkpoint, save_checkpoint
from mechscope.organisms.presets import get_preset
from mechscope.organisms.train import export_checkpoint, train


def test_resume_after_kill_is_identical(micro_run, copy_run_data):
    _, straight = micro_run
    preset = get_preset("micro-test")
    # "kill" after step 3: the last checkpoint is at step 2, so step 3 is redone on resume
    assert train(preset, copy_run_data, stop_after=3, show_progress=False) is None
    assert load_checkpoint(copy_run_data / "checkpoint.pt")["step"] == 2
    resumed = train(preset, copy_run_data, show_progress=False)
    a, b = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    card_a = json.loads((straight / "training_card.json").read_text())
    card_b = json.loads((resumed / "training_card.json").read_text())
    assert card_a["loss_curve"] == card_b["loss_curve"]
    assert len(card_a["loss_curve"]) == preset.steps


def test_batches_are_a_function_of_step():
    import numpy as np

    tokens = np.arange(1000, dtype=np.uint16)
    a = batch_for_step(tokens, 7, 4, 10, seed=0)
    assert torch.equal(a, batch_for_step(tokens, 7, 4, 10, seed=0))
    assert a.shape == (4, 10)
    assert torch.equal(a[:, 1:] - a[:, :-1], torch.ones(4, 9, dtype=a.dtype))  # contiguous chunks
    # one epoch covers every chunk exactly once
    starts = torch.cat([batch_for_step(tokens, s, 4, 10, seed=0)[:, 0] for s in range(25)])
    assert sorted(starts.tolist()) == list(range(0, 1000, 10))


def test_final_dir_is_a_plain_hf_checkpoint(micro_run):
    from transformers import AutoModelForCausalLM, GPT2LMHeadModel

    from mechscope.organisms import load_ground_truth

    _, final = micro_run
    model = AutoModelForCausalLM.from_pretrained(final)
    assert isinstance(model, GPT2LMHeadModel)
    assert load_ground_truth(final).heldout_names
    card = json.loads((final / "training_card.json").read_text())
    for key in ["tokens_per_second", "achieved_flops_per_second", "matmul_peak_flops_per_second",
                "fraction_of_peak", "final_metrics", "evals"]:
        assert key in card
    assert 0 < card["fraction_of_peak"] < 2
    assert {"ioi_accuracy", "induction_loss_ratio", "fact_recall", "day_accuracy",
            "docstring_accuracy", "heldout_text_loss"} <= set(card["final_metrics"])
    fig = json.loads((final / "loss_curve.json").read_text())
    assert fig["data"][0]["y"]


def test_export_from_checkpoint(micro_run, tmp_path):
    import shutil

    run, _ = micro_run
    copy = tmp_path / "copy"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("final"))
    final = export_checkpoint(copy)
    assert (final / "model.safetensors").is_file()


def test_unknown_preset():
    with pytest.raises(InputError, match="tiny-gpt2"):
        get_preset("no-such-preset")


def test_truncated_and_corrupt_checkpoints(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"model": {"w": torch.ones(100)}, "optimizer": {}, "step": 1,
                           "torch_rng": torch.get_rng_state(), "history": {}, "preset": "{}"})
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(path)
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    torch.save({"something": 1}, path)
    with pytest.raises(CheckpointError, match="not a mechscope"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_interrupted_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    state = {"model": {"w": torch.ones(3)}, "optimizer": {}, "step": 1, "torch_rng": torch.get_rng_state(),
             "history": {}, "preset": "{}"}
    save_checkpoint(path, state)

    def dying_save(obj, f):
        with open(f, "wb") as fh:
            fh.write(b"PK\x03\x04 half a file")
        raise KeyboardInterrupt("killed mid-save")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {**state, "step": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temp file left


def test_resume_refuses_a_different_preset(micro_run, copy_run_data):
    preset = get_preset("micro-test")
    train(preset, copy_run_data, stop_after=2, show_progress=False)
    with pytest.raises(CheckpointError, match="another preset"):
        train(get_preset("micro-test", lr=0.5), copy_run_data, show_progress=False)


def test_unknown_shipped_organism_lists_names():
    from mechscope.organisms import list_shipped, shipped_path

    with pytest.raises(ModelLoadError, match="available"):
        shipped_path("no-such-organism")
    assert isinstance(list_shipped(), list)


def test_missing_text_file_and_missing_natural_text(tmp_path):
    from mechscope.organisms.corpus import CorpusConfig, build_corpus
    from mechscope.organisms.world import make_world

    with pytest.raises(InputError, match="not found"):
        build_corpus(make_world(0), CorpusConfig(natural_paths=[str(tmp_path / "nope.txt")]))
    with pytest.raises(InputError, match="--text"):
        build_corpus(make_world(0), CorpusConfig(natural_paths=[]))


def _assert_resume_is_identical(preset, run_dir, straight_dir, stop_after: int) -> None:
    """Train `preset` straight through in `straight_dir` (same data) and with a kill at `stop_after`
    plus a resume in `run_dir`; the final weights must be equal."""
    import shutil

    shutil.copytree(run_dir / "data", straight_dir / "data")
    straight = train(preset, straight_dir, show_progress=False)
    assert train(preset, run_dir, stop_after=stop_after, show_progress=False) is None
    resumed = train(preset, run_dir, show_progress=False)
    a, b = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_is_identical_with_one_document_per_row(micro_run, copy_run_data, tmp_path):
    _assert_resume_is_identical(get_preset("micro-test", packing="row-per-document"), copy_run_data,
                                tmp_path / "straight_docs", stop_after=5)


def test_document_batches_hold_whole_documents():
    import numpy as np

    from mechscope.organisms.batches import document_batch, document_bounds

    tokens = np.array([0, 5, 6, 0, 7, 0, 8, 9, 10], dtype=np.uint16)
    bounds = document_bounds(tokens, eos=0)
    assert bounds.tolist() == [[0, 3], [3, 5], [5, 9]]
    x, labels, mask = document_batch(tokens, bounds, 0, 3, seq_len=8, seed=0, eos=0)
    rows = sorted(tuple(r[m.bool()].tolist()) for r, m in zip(x, mask, strict=True))
    assert rows == [(0, 5, 6), (0, 7), (0, 8, 9, 10)]
    assert (labels[mask == 0] == -100).all()


def test_induction_warmup_rows_repeat_their_span():
    from mechscope.organisms.batches import induction_batch

    x, _ = induction_batch(3, batch_size=4, vocab_size=100, seed=0, eos=0)
    span = (x.shape[1] - 1) // 2
    assert torch.equal(x[:, 1:1 + span], x[:, 1 + span:])
    assert (x[:, 0] == 0).all() and (x[:, 1:] > 0).all()
    assert torch.equal(x, induction_batch(3, batch_size=4, vocab_size=100, seed=0, eos=0)[0])


def test_induction_labels_score_only_the_second_copy_when_masked():
    from mechscope.organisms.batches import induction_batch, induction_labels

    x, n_prefix = induction_batch(5, batch_size=3, vocab_size=100, seed=0, eos=0)
    assert n_prefix == 0
    span = (x.shape[1] - 1) // 2
    assert torch.equal(induction_labels(x, mask_first_copy=False), x)
    labels = induction_labels(x, mask_first_copy=True)
    assert (labels[:, :1 + span] == -100).all()
    assert torch.equal(labels[:, 1 + span:], x[:, 1 + span:])
    assert not torch.equal(x, induction_batch(5, batch_size=3, vocab_size=100, seed=0, eos=0, stream=8)[0])


def test_induction_rows_with_a_random_prefix_repeat_after_it():
    from mechscope.organisms.batches import induction_batch, induction_labels

    prefixes = set()
    for step in range(20):
        x, n_prefix = induction_batch(step, batch_size=2, vocab_size=100, seed=0, eos=0, max_prefix=9)
        assert 0 <= n_prefix <= 9
        prefixes.add(n_prefix)
        span = (x.shape[1] - 1 - n_prefix) // 2
        start = 1 + n_prefix
        assert torch.equal(x[:, start:start + span], x[:, start + span:])
        labels = induction_labels(x, True, n_prefix)
        assert (labels[:, :start + span] == -100).all() and (labels[:, start + span:] > 0).all()
    assert len(prefixes) > 3  # the offset varies, so absolute position cannot predict the copy


def test_join_rows_pads_each_group_to_the_widest():
    from mechscope.organisms.batches import join_rows

    a = (torch.tensor([[1, 2, 3]]), torch.tensor([[1, 2, 3]]), torch.ones(1, 3, dtype=torch.long))
    b = (torch.tensor([[4], [5]]), torch.tensor([[-100], [5]]), torch.ones(2, 1, dtype=torch.long))
    x, labels, mask = join_rows([a, b], pad=0)
    assert x.tolist() == [[1, 2, 3], [4, 0, 0], [5, 0, 0]]
    assert labels.tolist() == [[1, 2, 3], [-100, -100, -100], [5, -100, -100]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0], [1, 0, 0]]


def test_resume_is_identical_with_induction_rows_in_every_batch(micro_run, copy_run_data, tmp_path):
    preset = get_preset("micro-test", packing="row-per-document", induction_warmup_steps=2, induction_rows_per_step=2,
                        induction_mask_first_copy=True, induction_max_prefix=5)
    _assert_resume_is_identical(preset, copy_run_data, tmp_path / "straight_rows", stop_after=3)


def test_llama_preset_builds_a_llama_that_mechscope_hooks(tokenizer):
    from mechscope import HookedModel
    from mechscope.organisms.presets import build_model

    torch.manual_seed(0)
    preset = get_preset("micro-test", arch="llama", d_model=32, n_head=2)
    hf = build_model(preset, eos_id=0).eval()
    assert type(hf).__name__ == "LlamaForCausalLM" and hf.config.intermediate_size == 88
    model = HookedModel.from_hf(hf, tokenizer)
    assert model.cfg.gated_mlp and model.cfg.positional == "rotary"
    tokens = torch.randint(1, preset.vocab_size, (2, 12))
    logits, cache = model.run_with_cache(tokens)
    assert torch.allclose(logits, hf(input_ids=tokens).logits, atol=1e-5)
    assert cache["pattern", 0].shape == (2, 2, 12, 12)


def test_unknown_arch_is_a_clear_error():
    import pytest

    from mechscope.errors import InputError
    from mechscope.organisms.presets import build_model

    with pytest.raises(InputError, match="supported: 'gpt2', 'llama'"):
        build_model(get_preset("micro-test", arch="mamba"))


def test_packed_documents_visit_every_document_once_per_epoch():
    import numpy as np

    from mechscope.organisms.batches import IGNORE, PackedDocuments, document_bounds

    rng = np.random.default_rng(0)
    docs = [np.concatenate([[0], rng.integers(1, 50, size=int(n))]) for n in rng.integers(1, 12, size=40)]
    tokens = np.concatenate(docs).astype(np.uint16)
    packed = PackedDocuments(tokens, document_bounds(tokens, 0), batch_size=2, seq_len=16, seed=3, pad=0)
    seen = []
    for step in range(packed.steps_per_epoch()):
        x, labels, positions = packed.batch(step)
        assert x.shape == labels.shape == positions.shape == (2, 16)
        for row, row_labels, row_positions in zip(x, labels, positions, strict=True):
            starts = (row_positions == 0).nonzero().flatten().tolist() + [16]
            for a, b in zip(starts, starts[1:], strict=False):
                if (row_labels[a:b] != IGNORE).any():  # a document, not the padding at the end
                    assert torch.equal(row_labels[a:b], row[a:b]) and row[a] == 0
                    seen.append(tuple(row[a:b].tolist()))
    assert len(seen) >= len(docs) - 2 * 2  # whole batches only; the leftover rows wait for the next epoch
    assert set(seen) <= {tuple(d.tolist()) for d in docs}
    assert len(set(seen)) == len(seen)
    assert torch.equal(packed.batch(1)[0], PackedDocuments(tokens, document_bounds(tokens, 0), 2, 16, 3, 0).batch(1)[0])


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_packed_rows_give_each_document_the_logits_it_has_alone(arch):
    import numpy as np

    from mechscope.organisms.batches import pack_rows
    from mechscope.organisms.presets import build_model

    torch.manual_seed(0)
    hf = build_model(get_preset("micro-test", n_layer=2, arch=arch), eos_id=0).eval()
    a, b = np.array([0, 5, 9, 4]), np.array([0, 7, 7, 8, 1, 2])
    x, _, positions = pack_rows([[(a, a), (b, b)]], seq_len=12, pad=0)
    with torch.no_grad():
        packed = hf(input_ids=x, position_ids=positions, use_cache=False).logits[0]
        alone = [hf(input_ids=torch.tensor(d)[None]).logits[0] for d in (a, b)]
    torch.testing.assert_close(packed[:4], alone[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(packed[4:10], alone[1], atol=1e-5, rtol=0)


def test_packed_induction_rows_repeat_each_span_after_its_own_prefix():
    from mechscope.organisms.batches import IGNORE, packed_induction_rows

    x, labels, positions = packed_induction_rows(4, n_rows=3, seq_len=96, vocab_size=100, seed=0, eos=0,
                                                 max_prefix=20, mask_first_copy=True, min_span=2)
    prefixes, spans = set(), set()
    for row, row_labels, row_positions in zip(x, labels, positions, strict=True):
        starts = (row_positions == 0).nonzero().flatten().tolist() + [96]
        for a, b in zip(starts, starts[1:], strict=False):
            scored = (row_labels[a:b] != IGNORE).nonzero().flatten()
            if len(scored) == 0:
                continue  # padding
            span = len(scored)
            assert row[a] == 0 and b - a - 1 - 2 * span >= 0
            assert torch.equal(row[b - span:b], row[b - 2 * span:b - span])
            assert torch.equal(row_labels[b - span:b], row[b - span:b])
            prefixes.add(b - a - 1 - 2 * span)
            spans.add(span)
    assert len(prefixes) > 2 and min(spans) < 8 and max(spans) <= 20
    with pytest.raises(InputError, match="too short for induction segments"):
        packed_induction_rows(0, 1, seq_len=40, vocab_size=100, seed=0, eos=0, max_prefix=20, mask_first_copy=True)


def test_resume_is_identical_with_packed_documents_and_induction_rows(micro_run, copy_run_data, tmp_path):
    preset = get_preset("micro-test", packing="documents", induction_rows_per_step=1, seq_len=64,
                        induction_mask_first_copy=True, induction_max_prefix=5)
    _assert_resume_is_identical(preset, copy_run_data, tmp_path / "straight_packed", stop_after=3)


def test_unknown_packing_is_a_clear_error():
    with pytest.raises(InputError, match="unknown packing 'rows'"):
        get_preset("micro-test", packing="rows")


def test_packed_documents_plan_each_epoch_once(monkeypatch):
    """Every epoch's packing is computed once, not once per step (that made epoch 2 of a 20000-step
    run 1.8x slower)."""
    import numpy as np

    from mechscope.organisms import batches

    calls = []
    real = batches.greedy_rows
    monkeypatch.setattr(batches, "greedy_rows", lambda *a: calls.append(1) or real(*a))
    rng = np.random.default_rng(0)
    tokens = np.concatenate([np.concatenate([[0], rng.integers(1, 50, size=int(n))])
                             for n in rng.integers(1, 12, size=60)]).astype(np.uint16)
    packed = batches.PackedDocuments(tokens, batches.document_bounds(tokens, 0), 2, 16, seed=0, pad=0)
    for step in range(3 * packed.steps_per_epoch()):
        packed.batch(step)
    assert len(calls) == 3


def test_padded_induction_rows_take_the_preset_minimum_span():
    from mechscope.organisms.batches import induction_batch

    spans = {(induction_batch(step, 2, 100, seed=0, eos=0, min_span=2)[0].shape[1] - 1) // 2 for step in range(40)}
    assert min(spans) < 8 and max(spans) <= 20


def test_threads_apply_to_the_call_only(micro_run, copy_run_data):
    """train(threads=N) sets torch's process-wide thread count for its own run and restores it."""
    seen = []
    torch.set_num_threads(1)
    train(get_preset("micro-test"), copy_run_data, threads=2, stop_after=3, show_progress=False)
    seen.append(torch.get_num_threads())
    with pytest.raises(CheckpointError):
        train(get_preset("micro-test", lr=0.5), copy_run_data, threads=2, show_progress=False)
    seen.append(torch.get_num_threads())
    assert seen == [1, 1]


def test_the_preset_span_range_reaches_the_packed_induction_rows(micro_run, copy_run_data, monkeypatch):
    """induction_min_span..induction_max_span is what training draws (tiny-llama trained to 20 copied spans
    of 32 at a ratio of only 0.50)."""
    from mechscope.organisms import train as train_module

    real, spans = train_module.packed_induction_rows, []

    def recording(*args, **kw):
        spans.append((kw["min_span"], kw["max_span"]))
        return real(*args, **kw)

    monkeypatch.setattr(train_module, "packed_induction_rows", recording)
    preset = get_preset("micro-test", packing="documents", induction_rows_per_step=1, seq_len=64,
                        induction_mask_first_copy=True, induction_max_prefix=5, induction_min_span=3,
                        induction_max_span=29)
    train(preset, copy_run_data, stop_after=2, show_progress=False)
    assert spans == [(3, 29)] * 2
    with pytest.raises(InputError, match="need at least 64"):
        get_preset("micro-test", packing="documents", induction_rows_per_step=1, seq_len=63, induction_max_prefix=5,
                   induction_max_span=29)
