"""Checks every compiled organism passes: HookedModel == plain HF forward, shipped files == a fresh
build from seed 0 (and so deterministic), recorded metrics re-measured on the shipped weights."""

import json

import pytest
import torch

from mechscope.organisms.compiled import COMPILED


@pytest.fixture(scope="module", params=sorted(COMPILED))
def name(request):
    torch.set_num_threads(1)
    return request.param


def test_hooked_logits_equal_plain_hf_forward(name):
    from transformers import AutoModelForCausalLM

    import mechscope
    from mechscope.organisms import shipped_path

    model = mechscope.load(f"organism:{name}")
    hf = AutoModelForCausalLM.from_pretrained(shipped_path(name)).eval()
    tokens = torch.randint(0, hf.config.vocab_size, (4, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model(tokens), hf(input_ids=tokens).logits)


def test_shipped_files_equal_a_fresh_build_and_its_metrics(name, tmp_path):
    import mechscope
    from mechscope.organisms import shipped_path
    from mechscope.organisms.compiled import build, load_circuit, measure

    out = build(name, tmp_path / name, seed=0)
    shipped = shipped_path(name)
    assert (out / "model.safetensors").read_bytes() == (shipped / "model.safetensors").read_bytes()
    assert json.loads((out / "circuit.json").read_text()) == json.loads((shipped / "circuit.json").read_text())
    for file in ["config.json", "tokenizer.json"]:
        fresh, kept = (json.loads((d / file).read_text()) for d in (out, shipped))
        fresh.pop("transformers_version", None), kept.pop("transformers_version", None)
        assert fresh == kept, file
    assert sum(p.stat().st_size for p in shipped.iterdir()) < 10e6
    circuit = load_circuit(name)
    assert circuit.organism == name and circuit.extra["seed"] == 0
    remeasured = measure(name, mechscope.load(f"organism:{name}"), circuit)
    assert remeasured.keys() == circuit.metrics.keys()
    for key, value in circuit.metrics.items():
        assert remeasured[key] == pytest.approx(value, abs=1e-3), key


def test_circuit_json_rejects_names_outside_the_eap_ig_grammar():
    from mechscope.errors import InputError
    from mechscope.organisms.compiled import Circuit

    ok = {"input": "", "a0.h1": "", "logits": ""}
    Circuit("x", "t", ok, {"input->a0.h1<q>": "", "a0.h1->logits": ""})
    for nodes, edges in [({"head0": ""}, {}), (ok, {"input->a0.h1": ""}), (ok, {"input->logits<q>": ""}),
                         (ok, {"input->m3": ""})]:
        with pytest.raises(InputError):
            Circuit("x", "t", nodes, edges)
