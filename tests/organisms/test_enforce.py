"""Enforced circuits (organisms/enforce.py) on a micro model: the losses, the taps and a short training run."""

import json
import shutil

import pytest
import torch

from mechscope.errors import InputError
from mechscope.organisms.enforce import Enforcement, Taps, enforcement_losses, enforcement_rows, parse_head
from mechscope.organisms.presets import build_model, get_preset
from tests import helpers


@pytest.fixture(scope="module")
def micro_llama():
    return helpers.micro_llama(vocab_size=64)


def test_rows_repeat_their_span_after_one_prefix_per_step():
    cfg = Enforcement(rows=4, max_prefix=6, min_span=2, max_span=5)
    spans = {enforcement_rows(step, cfg, vocab_size=64, seed=0, eos=0).span for step in range(40)}
    assert spans == {2, 3, 4, 5}
    rows = enforcement_rows(3, cfg, vocab_size=64, seed=0, eos=0)
    s, n = rows.second, rows.span
    assert rows.x.shape == (4, 1 + rows.n_prefix + 2 * n)
    assert torch.equal(rows.x[:, s - n:s], rows.x[:, s:s + n])
    assert rows.copy_positions().tolist() == list(range(s, s + n - 1))
    assert torch.equal(enforcement_rows(3, cfg, 64, 0, 0).x, rows.x)


def test_taps_replace_one_head_and_leave_the_others(micro_llama):
    rows = enforcement_rows(0, Enforcement(rows=3), vocab_size=64, seed=0, eos=0)
    taps = Taps(micro_llama)
    with torch.no_grad(), taps.run():
        clean = micro_llama(input_ids=rows.x).logits
    z = taps.seen[("z", 1)]
    cols = taps.head_slice(z, 1)
    assert z.shape[-1] == 32 and cols == slice(16, 32)
    assert taps.seen[("attn", 0)].shape == (3, 2, rows.x.shape[1], rows.x.shape[1])

    def zero_head_1(t):
        t = t.clone()
        t[..., cols] = 0
        return t

    with torch.no_grad(), taps.run({("z", 1): zero_head_1}):
        patched = micro_llama(input_ids=rows.x).logits
    assert torch.equal(taps.seen[("z", 1)][..., :16], z[..., :16])     # what layer 1 read is unchanged
    assert not torch.allclose(patched, clean)


def test_losses_are_finite_and_reach_every_weight_they_should(micro_llama):
    cfg = Enforcement(previous_head="a0.h1", induction_head="a1.h0", rows=4)
    losses = enforcement_losses(micro_llama, enforcement_rows(1, cfg, 64, 0, 0), cfg, Taps(micro_llama))
    assert set(losses) == {"task", "pattern", "interchange", "strict"}
    for name, value in losses.items():
        assert torch.isfinite(value), name
    micro_llama.zero_grad()
    losses["pattern"].backward()
    q1 = micro_llama.model.layers[1].self_attn.q_proj.weight.grad     # [n_heads * d_head, d_model]
    assert q1[:16].abs().sum() > 0 and q1[16:].abs().sum() == 0       # a1.h0's query is trained, a1.h1's not
    micro_llama.zero_grad()


def _losses_and_forwards(model, cfg: Enforcement) -> tuple[dict, int]:
    """The enforcement losses of step 1 and how many forwards of `model` they ran."""
    calls = []
    handle = model.register_forward_hook(lambda *args: calls.append(1))
    try:
        losses = enforcement_losses(model, enforcement_rows(1, cfg, 64, 0, 0), cfg, Taps(model))
    finally:
        handle.remove()
    return losses, len(calls)


def test_terms_turned_off_skip_their_forwards(micro_llama):
    """strict_weight 0 (and interchange_weight 0): that loss is a constant zero and its forward is not run."""
    heads = dict(previous_head="a0.h1", induction_head="a1.h0", rows=4)
    losses, forwards = _losses_and_forwards(micro_llama, Enforcement(**heads, strict_weight=0))
    assert float(losses["strict"]) == 0.0 and not losses["strict"].requires_grad
    assert forwards == 2                                               # task + interchange
    on, forwards_on = _losses_and_forwards(micro_llama, Enforcement(**heads))
    assert forwards_on == 3 and float(on["strict"]) > 0 and torch.equal(on["task"], losses["task"])
    alone, forwards = _losses_and_forwards(micro_llama, Enforcement(**heads, strict_weight=0, interchange_weight=0))
    assert forwards == 1 and float(alone["interchange"]) == 0.0 and torch.equal(alone["pattern"], losses["pattern"])


def test_total_loss_weights_every_term():
    from mechscope.organisms.enforce import total_enforcement_loss

    losses = {"task": torch.tensor(2.0), "pattern": torch.tensor(3.0), "interchange": torch.tensor(5.0),
              "strict": torch.tensor(7.0)}
    assert float(total_enforcement_loss(losses, Enforcement())) == 17.0
    weights = Enforcement(task_weight=0.1, pattern_weight=0.5, interchange_weight=0, strict_weight=2)
    assert float(total_enforcement_loss(losses, weights)) == pytest.approx(0.2 + 1.5 + 0 + 14)


def test_heads_must_be_named_and_ordered():
    assert parse_head("a1.h3") == (1, 3)
    with pytest.raises(InputError, match="a{layer}.h{head}"):
        parse_head("L1H3")
    with pytest.raises(InputError, match="earlier layer"):
        Enforcement(previous_head="a1.h0", induction_head="a1.h1").heads()


def test_needs_eager_attention():
    torch.manual_seed(0)
    model = build_model(get_preset("micro-test", arch="llama", n_layer=2, d_model=32, n_head=2, vocab_size=64))
    model.set_attn_implementation("sdpa")
    cfg = Enforcement(rows=2)
    with pytest.raises(InputError, match="eager"):
        enforcement_losses(model, enforcement_rows(0, cfg, 64, 0, 0), cfg, Taps(model))


def test_training_with_an_enforced_circuit_resumes_identically_and_writes_circuit_json(copy_run_data, tmp_path):
    from safetensors.torch import load_file

    from mechscope.organisms.compiled import load_circuit
    from mechscope.organisms.train import train

    preset = get_preset("micro-test", arch="llama", n_layer=2, packing="documents", seq_len=64,
                        enforce=Enforcement(previous_head="a0.h0", induction_head="a1.h1", rows=2, max_prefix=4))
    shutil.copytree(copy_run_data / "data", tmp_path / "straight" / "data")
    straight = train(preset, tmp_path / "straight", show_progress=False)
    assert train(preset, copy_run_data, stop_after=3, show_progress=False) is None
    resumed = train(preset, copy_run_data, show_progress=False)
    a, b = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    circuit = load_circuit(straight)
    assert circuit.heads() == [(0, 0), (1, 1)] and "a0.h0->a1.h1<k>" in circuit.edges
    assert {"faithfulness", "ablated_fraction", "prefixed_loss_ratio_span8"} <= set(circuit.metrics)
    card = json.loads((straight / "training_card.json").read_text())
    assert card["preset"]["enforce"]["induction_head"] == "a1.h1"
    log = [json.loads(line) for line in (tmp_path / "straight" / "log.jsonl").read_text().splitlines()]
    assert {"task", "pattern", "interchange", "strict"} <= set(next(r for r in log if "enforce" in r)["enforce"])


def test_without_strictness_the_export_writes_no_circuit_json(copy_run_data):
    """With strictness off other heads may carry the copy too (tiny-llama: a3.h3 beside the enforced a3.h1),
    so the enforced heads are not the organism's whole circuit: no circuit.json, the preset is on the card."""
    from mechscope.organisms.train import train

    preset = get_preset("micro-test", arch="llama", n_layer=2, packing="documents", seq_len=64, steps=2,
                        enforce=Enforcement(previous_head="a0.h0", induction_head="a1.h1", rows=2, max_prefix=4,
                                            strict_weight=0))
    final = train(preset, copy_run_data, show_progress=False)
    assert not (final / "circuit.json").exists()
    assert json.loads((final / "training_card.json").read_text())["preset"]["enforce"]["strict_weight"] == 0
