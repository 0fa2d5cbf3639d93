"""compiled-memory: every fact recalled, each stored in exactly the unit circuit.json names, the subject
information reaches the last position in layer 0 (a noise-and-restore trace), faithfulness."""

import pytest
import torch

NAME = "compiled-memory"


@pytest.fixture(scope="module")
def prompts(model, circuit):
    from mechscope.organisms.compiled.memory import fact_prompts

    return fact_prompts(model, circuit, seed=3)


def test_every_fact_is_recalled_from_text_by_the_plain_hf_model(circuit):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mechscope.organisms import shipped_path

    hf = AutoModelForCausalLM.from_pretrained(shipped_path(NAME)).eval()
    tok = AutoTokenizer.from_pretrained(shipped_path(NAME))
    facts = circuit.extra["facts"]
    assert len(facts) == 32 and {f["layer"] for f in facts} == {1, 2}
    for i, fact in enumerate(facts):
        text = ["", "so ", "then and "][i % 3] + fact["prompt"]
        ids = torch.tensor([[tok.bos_token_id] + tok.encode(text)])
        with torch.no_grad():
            top = hf(input_ids=ids).logits[0, -1].argmax().item()
        assert tok.convert_ids_to_tokens(top) == fact["attribute"], fact


def test_each_fact_lives_in_its_recorded_unit_and_nowhere_else(model, circuit, prompts):
    from mechscope.model.interventions import mean_ablate

    tokens, answers = prompts
    names = [f"blocks.{L}.mlp.hook_post" for L in (1, 2)]
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names=names)
    for i, fact in enumerate(circuit.extra["facts"]):
        post = cache[f"blocks.{fact['layer']}.mlp.hook_post"]
        assert post[i, -1, fact["unit"]] > 1.0                               # fires at 'is' of its prompt
        assert (post[:, :-1, fact["unit"]] == 0).all()                        # and at no other position
        others = [j for j, f in enumerate(circuit.extra["facts"]) if (f["layer"], f["unit"]) != (fact["layer"], fact["unit"])]
        assert (post[others, -1, fact["unit"]] == 0).all()                    # nor on other facts
    for fact in circuit.extra["facts"][:6]:
        zero = torch.zeros(model.cfg.d_mlp)
        with torch.no_grad(), model.hooks(fwd={f"blocks.{fact['layer']}.mlp.hook_post": mean_ablate(zero, units=[fact["unit"]])}):
            right = model(tokens)[:, -1].argmax(-1) == answers
        i = circuit.extra["facts"].index(fact)
        assert not right[i] and right[[j for j in range(len(answers)) if j != i]].all(), fact


def test_erased_subject_is_restored_by_the_last_position_after_layer_0_only(model, circuit, prompts):
    """Causal tracing in miniature: erase the subject's token embedding, restore one residual-stream
    state from the clean run. (ROME's Gaussian noise, 3 x the std of the subject embeddings, is a
    weaker corruption here: the keys are exact one-hots with wide margins, and recall only falls from
    1.0 to 0.64, mean of 5 draws of independent noise per prompt.)"""
    from mechscope.model.interventions import patch_from, zero_ablate
    from mechscope.organisms.compiled.memory import recall

    tokens, answers = prompts
    subject_pos = 6                                                     # [BOS] f f the REL of SUBJ is
    assert all(circuit.extra["facts"][i]["subject"] == model.tokenizer.convert_ids_to_tokens(int(tokens[i, subject_pos]))
               for i in range(len(answers)))
    names = [f"blocks.{L}.hook_resid_pre" for L in range(3)]
    with torch.no_grad():
        _, clean = model.run_with_cache(tokens, names=names)

    def traced(restore: dict) -> float:
        hooks = {"hook_embed": zero_ablate(positions=subject_pos)} | restore
        with torch.no_grad(), model.hooks(fwd=hooks):
            return recall(model, tokens, answers)

    assert traced({}) < 0.3
    assert traced({names[1]: patch_from(clean, positions=-1)}) == 1.0      # after the movers, at 'is'
    assert traced({names[0]: patch_from(clean, positions=subject_pos)}) == 1.0
    assert traced({names[1]: patch_from(clean, positions=subject_pos)}) < 0.3   # too late at the subject


def test_circuit_is_necessary_and_sufficient(model, circuit):
    from mechscope.organisms.compiled import measure

    metrics = measure(NAME, model, circuit)
    assert metrics["fact_recall"] == 1.0 and metrics["faithfulness"] >= 0.95 and metrics["ablated_recall"] <= 0.2
