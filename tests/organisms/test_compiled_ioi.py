"""compiled-ioi: IOI from text, each head attends where circuit.json says, and the ablations do what
the IOI circuit predicts (S-inhibition and name mover necessary, the negative mover lowers the diff)."""

import pytest
import torch

NAME = "compiled-ioi"


@pytest.fixture(scope="module")
def task(model):
    from mechscope.tasks.ioi import ioi_task

    return ioi_task(model, n_prompts=32, seed=5, template_ids=[0])


def _head(circuit, role) -> tuple[int, int]:
    node = next(h for h, r in circuit.extra["head_roles"].items() if r == role)
    return int(node.split(".")[0][1:]), int(node.split(".")[1][1:])


def _logit_diff(model, task, hooks=None) -> float:
    with torch.no_grad(), model.hooks(fwd=hooks or {}):
        last = model(task.clean_tokens)[:, -1]
    return (last.gather(1, task.answer_ids[:, None]) - last.gather(1, task.wrong_ids[:, None])).mean().item()


def test_indirect_object_from_text_by_the_plain_hf_model():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mechscope.organisms import shipped_path

    hf = AutoModelForCausalLM.from_pretrained(shipped_path(NAME)).eval()
    tok = AutoTokenizer.from_pretrained(shipped_path(NAME))
    for text, io in [("When Mary and John went to the store, John gave a drink to", "Mary"),
                     ("When Mary and John went to the store, Mary gave a drink to", "John"),
                     ("Then, Kate and Paul went to the park. Paul gave a ball to", "Kate")]:
        ids = torch.tensor([[tok.bos_token_id] + tok.encode(text)])
        with torch.no_grad():
            assert tok.convert_ids_to_tokens(hf(input_ids=ids).logits[0, -1].argmax().item()) == io, text


def test_heads_attend_where_the_circuit_says(model, circuit, task):
    names = [f"blocks.{L}.attn.hook_pattern" for L in range(3)]
    with torch.no_grad():
        _, cache = model.run_with_cache(task.clean_tokens, names=names)
    rows, pos = torch.arange(len(task)), task.positions

    def attention(role, query, key):
        layer, head = _head(circuit, role)
        return cache[names[layer]][rows, head, query, key]

    assert (attention("duplicate-token", pos["S2"], pos["S1"]) > 0.99).all()
    assert (attention("duplicate-token", pos["IO"], torch.zeros_like(pos["IO"])) > 0.99).all()   # first occurrence: BOS
    assert (attention("s-inhibition", pos["END"], pos["S2"]) > 0.99).all()
    assert (attention("name-mover", pos["END"], pos["IO"]) > 0.99).all()
    assert (attention("negative-name-mover", pos["END"], pos["IO"]) > 0.99).all()
    layer, head = _head(circuit, "bos")
    assert (cache[names[layer]][:, head, :, 0] > 0.99).all()


def test_ablations_behave_as_the_ioi_circuit_predicts(model, circuit, task):
    from mechscope.model.interventions import zero_ablate

    def without(role) -> float:
        layer, head = _head(circuit, role)
        return _logit_diff(model, task, {f"blocks.{layer}.attn.hook_z": zero_ablate(heads=[head])})

    clean = _logit_diff(model, task)
    assert clean == pytest.approx(7.0, abs=0.05)
    assert without("negative-name-mover") == pytest.approx(10.0, abs=0.05)   # the negative mover costs 3
    assert without("name-mover") < 0
    assert without("s-inhibition") < 0          # the movers then copy S (two occurrences) more than IO
    assert without("duplicate-token") < 0
    assert without("bos") == pytest.approx(clean, abs=0.05) and without("average") == pytest.approx(clean, abs=0.05)


def test_circuit_is_necessary_and_sufficient(model, circuit):
    from mechscope.organisms.compiled import measure

    metrics = measure(NAME, model, circuit)
    assert metrics["ioi_accuracy"] == 1.0 and metrics["faithfulness"] >= 0.95
    assert metrics["ablated_logit_diff"] < 0.05 * metrics["logit_diff"]


def test_s_inhibition_reaches_the_name_movers_through_their_queries_only(model, circuit, task):
    """Edge check: take a name mover's q, k or v from a run with the S-inhibition head zero-ablated;
    only q (Q-composition) changes the logit diff."""
    from mechscope.model.interventions import patch_from, zero_ablate

    L1, sinh = _head(circuit, "s-inhibition")
    L2, mover = _head(circuit, "name-mover")
    names = [f"blocks.{L2}.attn.hook_{x}" for x in "qkv"]
    with torch.no_grad(), model.hooks(fwd={f"blocks.{L1}.attn.hook_z": zero_ablate(heads=[sinh])}):
        _, broken = model.run_with_cache(task.clean_tokens, names=names)
    clean = _logit_diff(model, task)
    for name in names:
        diff = _logit_diff(model, task, {name: patch_from(broken, heads=[mover])})
        if name.endswith("hook_q"):
            assert diff < clean - 5, name
        else:
            assert diff == pytest.approx(clean, abs=1e-3), name
    assert f"a{L1}.h{sinh}->a{L2}.h{mover}<q>" in circuit.edges
