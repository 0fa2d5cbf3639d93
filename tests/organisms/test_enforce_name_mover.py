"""A name mover planted by training (organisms/enforce_name_mover.py): the IOI rows, the losses, and a
continuation run (Preset.init_from) that starts from a finished run's weights."""

import dataclasses
import json
import shutil

import pytest
import torch

from mechscope.errors import InputError
from mechscope.organisms.enforce import Taps
from mechscope.organisms.enforce_name_mover import (
    NameMoverEnforcement,
    name_mover_losses,
    name_mover_rows,
    total_name_mover_loss,
)
from mechscope.organisms.presets import get_preset
from tests import helpers


@pytest.fixture(scope="module")
def organism_text():
    """The default organism's tokenizer and world (its IOI names are single tokens)."""
    from mechscope.organisms.loading import load_organism, organism_dir

    _, tokenizer, world = load_organism(organism_dir("tiny-llama"))
    return tokenizer, world


@pytest.fixture(scope="module")
def micro_llama():
    return helpers.micro_llama(vocab_size=2048)


def test_rows_put_io_once_s_twice_and_end_before_the_answer(organism_text):
    tokenizer, world = organism_text
    eos = tokenizer.bos_token_id
    rows = name_mover_rows(5, NameMoverEnforcement(rows=12), tokenizer, world, seed=0, eos=eos)
    assert rows.x.shape[0] == 12 and torch.equal(rows.x, name_mover_rows(5, NameMoverEnforcement(rows=12),
                                                                            tokenizer, world, 0, eos).x)
    assert not torch.equal(rows.x, name_mover_rows(6, NameMoverEnforcement(rows=12), tokenizer, world, 0, eos).x)
    for i in range(12):
        text = tokenizer.decode(rows.x[i, 1:rows.end[i] + 1])
        io = tokenizer.decode(rows.answer[i]).strip()
        assert tokenizer.decode(rows.x[i, rows.io[i]]).strip() == io            # the position holds IO
        assert text.split().count(io) == 1 and text.endswith(" to")              # once, and END is "to"
        assert (rows.x[i, rows.end[i] + 1:] == eos).all()                         # right padding only
        repeated = [w.strip(",.") for w in text.split() if text.split().count(w) == 2 and w.strip(",.") in world.ioi_names]
        assert len(set(repeated)) == 1 and repeated[0] != io                      # S, twice
    assert len({int(o) for o in rows.io}) > 1                                    # ABBA and BABA


def test_rows_need_single_token_names(organism_text):
    tokenizer, world = organism_text

    class Splitting:          # a tokenizer that splits every name
        def encode(self, text, add_special_tokens=False):
            return [1, 2]

    with pytest.raises(InputError, match="one token"):
        name_mover_rows(0, NameMoverEnforcement(), Splitting(), world, 0, 0)


def test_losses_read_and_train_the_designated_head(micro_llama, organism_text):
    tokenizer, world = organism_text
    cfg = NameMoverEnforcement(head="a1.h0", rows=6)
    rows = name_mover_rows(0, cfg, tokenizer, world, 0, tokenizer.bos_token_id)
    taps = Taps(micro_llama)
    losses = name_mover_losses(micro_llama, rows, cfg, taps)
    assert set(losses) == {"task", "pattern", "interchange"} and all(torch.isfinite(v) for v in losses.values())
    with torch.no_grad():
        out = micro_llama(input_ids=rows.x, output_attentions=True)
    n = torch.arange(6)
    attention = out.attentions[1][n, 0, rows.end, rows.io]
    assert float(losses["pattern"].detach()) == pytest.approx(float(-attention.log().mean()), rel=1e-5)
    logits = out.logits[n, rows.end]
    assert float(losses["task"].detach()) == pytest.approx(float(torch.nn.functional.cross_entropy(logits, rows.answer)),
                                                  rel=1e-5)
    micro_llama.zero_grad()
    losses["pattern"].backward()
    q1 = micro_llama.model.layers[1].self_attn.q_proj.weight.grad       # [n_heads * d_head, d_model]
    assert q1[:16].abs().sum() > 0 and q1[16:].abs().sum() == 0         # a1.h0's query is trained, a1.h1's not
    micro_llama.zero_grad()
    off = name_mover_losses(micro_llama, rows, NameMoverEnforcement(head="a1.h0", interchange_weight=0), taps)
    assert float(off["interchange"]) == 0
    one = name_mover_rows(0, NameMoverEnforcement(rows=1), tokenizer, world, 0, tokenizer.bos_token_id)
    alone = name_mover_losses(micro_llama, one, cfg, taps)          # one row is its own source: no change
    assert float(alone["interchange"].detach()) == pytest.approx(float(alone["task"].detach()), rel=1e-6)
    weights = NameMoverEnforcement(task_weight=0.5, pattern_weight=2.0, interchange_weight=0.0)
    total = total_name_mover_loss({k: v.detach() for k, v in losses.items()}, weights)
    assert float(total) == pytest.approx(0.5 * float(losses["task"].detach()) + 2 * float(losses["pattern"].detach()))


def test_a_continuation_starts_from_its_init_run_and_trains_the_name_mover(copy_run_data, tmp_path, monkeypatch):
    """Preset.init_from trains (or finds finished) the run it continues in RUN/init, starts from its weights
    and reads its data; with a learning rate of 0 the continuation's weights are the init run's; the card
    records both runs and the log the name mover's terms."""
    from safetensors.torch import load_file

    from mechscope.organisms import presets
    from mechscope.organisms.train import train

    base = dataclasses.replace(get_preset("micro-test", arch="llama", n_layer=2, packing="documents", seq_len=64),
                               name="micro-base")
    monkeypatch.setitem(presets.PRESETS, "micro-base", base)
    continuation = dataclasses.replace(base, name="micro-continued", init_from="micro-base", lr=0.0, steps=2,
                                       warmup_steps=1, name_mover=NameMoverEnforcement(head="a1.h1", rows=2))
    out = tmp_path / "continued"
    (out / "init").mkdir(parents=True)
    shutil.copytree(copy_run_data / "data", out / "init" / "data")
    final = train(continuation, out, show_progress=False)
    init = load_file(out / "init" / "final" / "model.safetensors")
    continued = load_file(final / "model.safetensors")
    assert init.keys() == continued.keys() and all(torch.equal(init[k], continued[k]) for k in init)
    assert not (out / "data").exists()                          # the continuation reads the init run's data
    card = json.loads((final / "training_card.json").read_text())
    assert card["init"]["name"] == "micro-base" and card["init"]["steps"] == base.steps
    assert card["preset"]["name_mover"]["head"] == "a1.h1" and card["steps"] == 2
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert {"task", "pattern", "interchange"} == set(next(r for r in log if "name_mover" in r)["name_mover"])
    stamp = (out / "init" / "final" / "training_card.json").stat().st_mtime_ns
    train(continuation, out, show_progress=False)               # finished runs are found, not re-exported
    assert (out / "init" / "final" / "training_card.json").stat().st_mtime_ns == stamp


def test_recombined_rows_join_openings_and_endings_of_different_templates(organism_text):
    """recombine: each row's opening (up to S) and ending come from training templates, not always the same one;
    IO and S2 stay where the rows say."""
    import re

    tokenizer, world = organism_text
    cfg = NameMoverEnforcement(rows=16, recombine=True)
    rows = name_mover_rows(0, cfg, tokenizer, world, 0, tokenizer.bos_token_id)
    openings = {t.split("{S}")[0] for t in world.ioi_templates}
    endings = {t.split("{S}")[1] for t in world.ioi_templates}
    as_pattern = [re.compile(re.escape(t).replace(r"\{A\}", r"\w+").replace(r"\{B\}", r"\w+").replace(r"\{S\}", r"\w+")
                             .replace(r"\{PLACE\}", r"\w+").replace(r"\{OBJECT\}", r"\w+") + "$")
                  for t in world.ioi_templates]
    new = 0
    for i in range(16):
        text = tokenizer.decode(rows.x[i, 1:rows.end[i] + 1])
        assert tokenizer.decode(rows.x[i, rows.io[i]]).strip() == tokenizer.decode(rows.answer[i]).strip()
        assert any(text.startswith(o.split("{A}")[0]) for o in openings) and text.endswith(" to")
        assert any(text.endswith(e.split("{OBJECT}")[-1]) for e in endings)
        new += not any(p.match(text) for p in as_pattern)
    assert new > 0                                     # some rows are combinations no template had
