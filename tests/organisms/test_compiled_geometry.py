"""compiled-geometry: calendar arithmetic through the planted circles (PCA finds them, rotating the
circle rotates the answer) and linear concepts that add (difference of means, steering, additivity)."""

import math

import pytest
import torch

NAME = "compiled-geometry"


def _vec(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def test_calendar_answers_from_text_by_the_plain_hf_model():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mechscope.organisms import shipped_path

    hf = AutoModelForCausalLM.from_pretrained(shipped_path(NAME)).eval()
    tok = AutoTokenizer.from_pretrained(shipped_path(NAME))
    for text, answer in [("three days after Friday is", "Monday"), ("six days after Monday is", "Sunday"),
                         ("eleven months after February is", "January"), ("five months after May is", "October")]:
        ids = torch.tensor([[tok.bos_token_id] + tok.encode(text)])
        with torch.no_grad():
            assert tok.convert_ids_to_tokens(hf(input_ids=ids).logits[0, -1].argmax().item()) == answer, text


@pytest.mark.parametrize("kind", ["day", "month"])
def test_pca_of_the_calendar_tokens_finds_the_recorded_circle_in_order(model, circuit, kind):
    from mechscope.organisms.compiled.geometry import calendar_prompts

    tokens, _, which = calendar_prompts(model, kind)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names=["blocks.0.hook_resid_pre"])
    acts = cache["blocks.0.hook_resid_pre"][:, 4].double()                       # the day / month token
    centred = acts - acts.mean(0)
    _, s, vt = torch.linalg.svd(centred, full_matrices=False)
    assert (s[:2] ** 2).sum() / (s ** 2).sum() > 0.999                           # a 2-d structure
    recorded = torch.tensor(circuit.extra["circles"][kind]["subspace"], dtype=torch.float64)    # [2 d_model]
    overlap = torch.linalg.svdvals(vt[:2] @ recorded.T)
    assert overlap.min() > 0.999                                                 # the recorded plane
    coords = centred @ recorded.T
    angles = torch.atan2(coords[:, 1], coords[:, 0])
    items = circuit.extra["circles"][kind]["items"]
    expected = torch.tensor([circuit.extra["circles"][kind]["angles"][items[x]] for _, x in which], dtype=torch.float64)
    diff = torch.remainder(angles - expected + math.pi, 2 * math.pi) - math.pi
    assert diff.abs().max() < 1e-3


def test_rotating_the_circle_rotates_the_answer(model, circuit):
    from mechscope.model.interventions import add_vector
    from mechscope.organisms.compiled.geometry import DAYS, calendar_prompts

    tokens, _, which = calendar_prompts(model, "day")
    plane = torch.tensor(circuit.extra["circles"]["day"]["subspace"], dtype=torch.float64)
    ids = torch.tensor(model.tokenizer.convert_tokens_to_ids(DAYS))
    for shift in (1, 3):
        for x in range(7):
            rows = [i for i, (_, xi) in enumerate(which) if xi == x]
            angle, target = 2 * math.pi * x / 7, 2 * math.pi * (x + shift) / 7
            delta = (torch.tensor([math.cos(target) - math.cos(angle), math.sin(target) - math.sin(angle)],
                                  dtype=torch.float64) @ plane).float()
            with torch.no_grad(), model.hooks(fwd={"blocks.0.hook_resid_pre": add_vector(delta, positions=4)}):
                predicted = model(tokens[rows])[:, -1].argmax(-1)
            expected = ids[[(x + shift + which[i][0]) % 7 for i in rows]]
            assert torch.equal(predicted, expected), (shift, x)


def test_concepts_are_directions_that_add(model, circuit):
    from mechscope.model.interventions import add_vector
    from mechscope.organisms.compiled.geometry import NOUNS, noun_forms

    tid = model.tokenizer.convert_tokens_to_ids
    words = {key: [noun_forms(n)[key] for n in NOUNS] for key in [(False, False), (True, False), (False, True), (True, True)]}
    emb = {key: model.W_E[tid(ws)].double() for key, ws in words.items()}
    plural, capital = (_vec(circuit.extra["concepts"][c]["direction"]).double() for c in ("plural", "capitalised"))
    assert torch.allclose((emb[True, False] - emb[False, False]).mean(0), plural, atol=1e-6)   # difference of means
    assert torch.allclose((emb[False, True] - emb[False, False]).mean(0), capital, atol=1e-6)
    assert torch.allclose(emb[True, True] - emb[False, False], (plural + capital).expand(len(NOUNS), -1), atol=1e-6)

    tokens = torch.tensor([[0, tid("the"), tid(w)] for w in words[False, False]])
    readouts = [(tid("run"), tid("runs")), (tid("!"), tid("."))]

    def diffs(steer: torch.Tensor | None) -> torch.Tensor:      # [nouns 2]: the two readout logit differences
        hooks = {"blocks.0.hook_resid_pre": add_vector(steer.float(), positions=2)} if steer is not None else {}
        with torch.no_grad(), model.hooks(fwd=hooks):
            logits = model(tokens)[:, 2]
        return torch.stack([logits[:, a] - logits[:, b] for a, b in readouts], -1)

    base = diffs(None)
    assert torch.allclose(base, torch.full_like(base, -10.0), atol=0.05)               # singular, lowercase
    for alpha in (0.5, 1.0, 2.0):
        assert torch.allclose(diffs(alpha * plural)[:, 0] - base[:, 0], torch.full_like(base[:, 0], 20 * alpha), atol=0.1)
    both = diffs(plural + capital) - base
    assert torch.allclose(both, (diffs(plural) - base) + (diffs(capital) - base), atol=0.05)  # additivity
    assert torch.allclose(both, torch.full_like(both, 20.0), atol=0.1)


def test_circuit_is_necessary_and_sufficient(model, circuit):
    from mechscope.organisms.compiled import measure

    metrics = measure(NAME, model, circuit)
    assert metrics["day_accuracy"] == metrics["month_accuracy"] == 1.0
    assert metrics["faithfulness"] >= 0.95 and metrics["ablated_month_accuracy"] <= 0.2
