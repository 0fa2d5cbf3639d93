"""compiled-induction: behaviour, necessity and sufficiency of the planted circuit, head roles.
(Checks shared by every compiled organism are in test_compiled_common.py.)"""

import json

import pytest
import torch
import torch.nn.functional as F

NAME = "compiled-induction"


@pytest.fixture(scope="module")
def rep(model):
    from mechscope.tasks.induction import repeated_tokens

    return repeated_tokens(model, 16, 24, seed=7)


def _roles(circuit) -> dict[str, tuple[int, int]]:
    return {role: tuple(int(x[1:]) for x in node.split(".")) for node, role in circuit.extra["head_roles"].items()}


def test_copies_the_second_copy_by_plain_hf_loss(rep):
    """Loss from the plain HF forward: the second copy is predicted, the first is at chance."""
    from transformers import AutoModelForCausalLM

    from mechscope.organisms import shipped_path

    hf = AutoModelForCausalLM.from_pretrained(shipped_path(NAME)).eval()
    with torch.no_grad():
        logits = hf(input_ids=rep.tokens).logits[:, :-1]
    loss = F.cross_entropy(logits.transpose(1, 2), rep.tokens[:, 1:], reduction="none")   # [batch pos-1]
    s, n = rep.start, rep.half_len
    first, second = loss[:, s:s + n - 1].mean().item(), loss[:, s + n:s + 2 * n - 1].mean().item()
    assert first == pytest.approx(torch.log(torch.tensor(float(hf.config.vocab_size))).item(), rel=0.02)
    assert second / first < 0.01


def test_ablating_the_circuit_destroys_copying_and_the_rest_does_not_matter(model, circuit, rep):
    from mechscope.attention.icl import repeat_loss
    from mechscope.organisms.compiled.ablation import node_faithfulness, node_means
    from mechscope.tasks.induction import repeated_tokens

    means = node_means(model, repeated_tokens(model, 16, 24, seed=8).tokens)
    faith = node_faithfulness(model, lambda: repeat_loss(model, rep).drop, means, circuit.heads(), circuit.mlps())
    assert faith.full > 3.5                       # ln(48) - ~0 nats
    assert faith.ablated_fraction < 0.05          # (ii) the circuit is necessary
    assert faith.faithfulness >= 0.95             # (iii) and sufficient
    # ablating either circuit head alone already removes the loss drop: both are needed
    for head in circuit.heads():
        alone = node_faithfulness(model, lambda: repeat_loss(model, rep).drop, means, [head])
        assert alone.circuit_ablated < 0.05 * alone.full, head


def test_every_head_does_what_circuit_json_says(model, circuit, rep):
    """Read from the attention patterns, independently of the builder's own measurement."""
    names = [f"blocks.{L}.attn.hook_pattern" for L in range(2)]
    with torch.no_grad():
        _, cache = model.run_with_cache(rep.tokens, names=names)
    pos = torch.arange(rep.tokens.shape[1])
    second = torch.arange(rep.second_copy.start, rep.second_copy.stop)

    def mean_at(layer, head, queries, keys):
        return cache[names[layer]][:, head, queries, keys].mean().item()

    roles = _roles(circuit)
    assert mean_at(*roles["previous-token"], pos[1:], pos[:-1]) > 0.99
    assert mean_at(*roles["induction"], second, second - rep.half_len + 1) > 0.99
    assert mean_at(*roles["duplicate-token"], second, second - rep.half_len) > 0.99
    assert mean_at(*roles["self"], pos, pos) > 0.99
    assert mean_at(*roles["lag-2"], pos[2:], pos[:-2]) > 0.99
    bos_heads = [tuple(int(x[1:]) for x in node.split(".")) for node, role in circuit.extra["head_roles"].items()
                 if role == "bos"]
    assert len(bos_heads) == 2
    for layer, head in bos_heads:
        assert mean_at(layer, head, pos, torch.zeros_like(pos)) > 0.99
    uniform = cache[names[roles["average"][0]]][:, roles["average"][1]]
    assert torch.allclose(uniform[0, -1], torch.full_like(uniform[0, -1], 1 / len(pos)), atol=1e-4)
    assert circuit.heads() == sorted([roles["previous-token"], roles["induction"]])
    assert f"a0.h{roles['previous-token'][1]}->a1.h{roles['induction'][1]}<k>" in circuit.edges


def test_compiling_is_deterministic_and_the_seed_moves_the_heads(tmp_path):
    from mechscope.organisms.compiled.induction import compile_induction

    for i in range(2):
        compile_induction(seed=3)[0].save(tmp_path / str(i))
    assert (tmp_path / "0" / "model.safetensors").read_bytes() == (tmp_path / "1" / "model.safetensors").read_bytes()
    roles = {s: compile_induction(seed=s)[1].extra["head_roles"] for s in range(6)}
    assert len({json.dumps(r, sort_keys=True) for r in roles.values()}) > 1


def test_build_command_writes_a_loadable_organism(tmp_path):
    from typer.testing import CliRunner

    from mechscope.cli import app

    res = CliRunner().invoke(app, ["organism", "build", NAME, "--out", str(tmp_path / "o"), "--seed", "2",
                                   "--json", str(tmp_path / "m.json")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "m.json").read_text())["faithfulness"] >= 0.95
    assert json.loads((tmp_path / "o" / "circuit.json").read_text())["seed"] == 2
    res = CliRunner().invoke(app, ["organism", "build", "nope", "--out", str(tmp_path / "x")])
    assert res.exit_code != 0 and "no compiled organism named" in str(res.exception) + res.output


def test_the_previous_token_head_reaches_the_induction_head_through_its_key_only(model, circuit, rep):
    """Edge check: take the induction head's q, k or v from a run with the previous-token head
    mean-ablated. Only the key carries the K-composition edge, so only k breaks copying."""
    from mechscope.attention.icl import repeat_loss
    from mechscope.model.interventions import patch_from
    from mechscope.organisms.compiled.ablation import ablation_hooks, node_means
    from mechscope.tasks.induction import repeated_tokens

    roles = _roles(circuit)
    (L0, prev), (L1, ind) = roles["previous-token"], roles["induction"]
    means = node_means(model, repeated_tokens(model, 16, 24, seed=8).tokens)
    names = [f"blocks.{L1}.attn.hook_{x}" for x in "qkv"]
    with torch.no_grad(), model.hooks(fwd=ablation_hooks(means, [(L0, prev)], ())):
        _, broken = model.run_with_cache(rep.tokens, names=names)
    full = repeat_loss(model, rep).drop
    for name in names:
        with torch.no_grad(), model.hooks(fwd={name: patch_from(broken, heads=[ind])}):
            drop = repeat_loss(model, rep).drop
        if name.endswith("hook_k"):
            assert drop < 0.05 * full, name
        else:
            assert drop == pytest.approx(full, abs=1e-3), name
    assert f"a{L0}.h{prev}->a{L1}.h{ind}<k>" in circuit.edges
    assert f"a{L0}.h{prev}->a{L1}.h{ind}<q>" not in circuit.edges and f"a{L0}.h{prev}->a{L1}.h{ind}<v>" not in circuit.edges


def test_copying_detector_scores_only_the_head_whose_ov_reaches_the_logits(model, circuit):
    """Only the induction head writes where the unembedding reads (the copy slot); every other head's
    OV circuit to the logits is zero, and must score 0 rather than rounding noise."""
    from mechscope.attention.detectors import copying_scores

    scores = copying_scores(model).eigen
    layer, head = _roles(circuit)["induction"]
    assert scores[layer, head] == pytest.approx(1.0, abs=1e-4)
    scores[layer, head] = 0
    assert (scores == 0).all()
