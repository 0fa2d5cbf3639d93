"""The planted mechanisms in the shipped organisms (held-out names, fixed evaluation seed).

The issue's targets: IOI >= 0.9, induction loss ratio <= 0.3, fact recall >= 0.9, day arithmetic
>= 0.8, docstring next argument >= 0.8. Each (organism, metric) pair is either `PLANTED` (the
shipped weights meet the target: a plain test) or known not to be reached within the training
budget (xfail, non-strict, so a retrained organism that meets it shows as XPASS).
"""

import pytest

from mechscope.organisms import list_shipped, load_ground_truth

TARGETS = {  # metric -> (direction, threshold)
    "ioi_accuracy": (">=", 0.9),
    "induction_loss_ratio": ("<=", 0.3),
    "fact_recall": (">=", 0.9),
    "day_accuracy": (">=", 0.8),
    "docstring_accuracy": (">=", 0.8),
}
METRIC_FAMILY = {"ioi_accuracy": "ioi", "day_accuracy": "days"}
PLANTED = {
    "tiny-gpt2": set(TARGETS) - {"induction_loss_ratio"},
    "tiny-llama": set(TARGETS),
    "tiny-llama-base": set(TARGETS),
    "tiny-gpt2-docs": {"docstring_accuracy"},
    "induction-2l": {"induction_loss_ratio", "fact_recall", "docstring_accuracy"},
}


def _cases():
    for organism, planted in PLANTED.items():
        for metric in TARGETS:
            marks = [pytest.mark.skipif(organism not in list_shipped(),
                                        reason=f"{organism} weights are not shipped (train with "
                                               "`mechscope organism train` and copy RUN/final)")]
            family = METRIC_FAMILY.get(metric)
            if organism in list_shipped() and family and not load_ground_truth(organism).plants(family):
                marks.append(pytest.mark.skip(reason=f"{organism}'s corpus had no {family} family"))
            elif metric not in planted:
                marks.append(pytest.mark.xfail(strict=False, reason=f"{metric} did not reach its target "
                                               f"for {organism} within the CPU training budget"))
            yield pytest.param(organism, metric, marks=marks, id=f"{organism}-{metric}")


_CACHE: dict = {}


def _metrics(organism: str) -> dict:
    if organism not in _CACHE:
        import torch

        from mechscope.organisms.evaluate import evaluate
        from mechscope.organisms.loading import load_organism

        torch.set_num_threads(1)
        model, tok, gt = load_organism(organism)
        _CACHE[organism] = evaluate(model, tok, gt, None, n_prompts=200)
    return _CACHE[organism]


@pytest.mark.parametrize("organism,metric", list(_cases()))
def test_mechanism_target(organism, metric):
    value = _metrics(organism)[metric]
    direction, threshold = TARGETS[metric]
    assert (value >= threshold) if direction == ">=" else (value <= threshold), (organism, metric, value)


@pytest.mark.parametrize("organism", sorted(PLANTED))
def test_shipped_files_and_auto_loading(organism):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mechscope.organisms import load_ground_truth, shipped_path

    if organism not in list_shipped():
        pytest.skip(f"{organism} is not shipped")
    path = shipped_path(organism)
    for name in ["model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json",
                 "ground_truth.json", "training_card.json", "loss_curve.json"]:
        assert (path / name).is_file(), name
    assert sum(p.stat().st_size for p in path.iterdir()) < 40e6
    model = AutoModelForCausalLM.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    assert model.config.vocab_size >= len(tok)
    gt = load_ground_truth(organism)
    for word in gt.heldout_names + gt.days:
        assert len(tok.encode(" " + word, add_special_tokens=False)) == 1, word


def test_default_organism_is_shipped():
    from mechscope.organisms import DEFAULT_ORGANISM

    assert DEFAULT_ORGANISM in list_shipped()


@pytest.mark.parametrize("organism", sorted(PLANTED))
def test_shipped_weights_come_from_the_preset_of_the_same_name(organism):
    """The training card of a shipped organism records the preset it was trained with; it must be the
    preset that `mechscope organism train NAME` uses now, or the documented command does not reproduce it."""
    import json

    from mechscope.organisms import shipped_path
    from mechscope.organisms.presets import PRESETS
    from mechscope.organisms.train import _training_fields

    if organism not in list_shipped():
        pytest.skip(f"{organism} is not shipped")
    card = json.loads((shipped_path(organism) / "training_card.json").read_text())
    assert _training_fields(card["preset"]) == _training_fields(PRESETS[organism].to_dict())


def test_ground_truths_record_their_own_corpus():
    """Each trained organism's ground truth lists the families of its own training corpus (from its
    training card) and no templates of a family it never saw; distinct corpora, distinct ground truths."""
    import json

    from mechscope.organisms import shipped_path

    texts, corpora = set(), set()
    for organism in sorted(PLANTED):
        if organism not in list_shipped():
            continue
        gt = load_ground_truth(organism)
        card = json.loads((shipped_path(organism) / "training_card.json").read_text())
        assert gt.families == card["corpus"]["family_tokens"], organism
        assert bool(gt.day_template) == ("days" in gt.families), organism
        texts.add((shipped_path(organism) / "ground_truth.json").read_text())
        corpora.add(json.dumps([card["corpus"]["config"]["shares"], card["corpus"]["family_tokens"]], sort_keys=True))
    # organisms trained on one corpus (tiny-gpt2 and tiny-llama: same world and mix) share one ground truth
    assert len(texts) == len(corpora)


@pytest.mark.parametrize("organism", sorted(PLANTED))
def test_recorded_mechanisms_are_remeasured_on_the_shipped_weights(organism):
    """mechanisms.json (heads, repeat loss, task metrics, claims) matches a fresh measurement."""
    import mechscope
    from mechscope.organisms.mechanisms import CLAIM_TARGETS, head_mechanisms, load_mechanisms, meets

    if organism not in list_shipped():
        pytest.skip(f"{organism} is not shipped")
    recorded = load_mechanisms(organism)
    fresh = head_mechanisms(mechscope.load(f"organism:{organism}"))
    for detector, rows in recorded["heads"].items():
        assert [r["head"] for r in rows] == [r["head"] for r in fresh["heads"][detector]], detector
        for old, new in zip(rows, fresh["heads"][detector], strict=True):
            assert new["score"] == pytest.approx(old["score"], abs=1e-3) and old.get("lag") == new.get("lag")
    for key, value in recorded["repeat"].items():
        assert fresh["repeat"][key] == pytest.approx(value, abs=1e-3)
    metrics = _metrics(organism)
    assert recorded["tasks"].keys() == metrics.keys()
    for key, value in recorded["tasks"].items():
        assert metrics[key] == pytest.approx(value, abs=1e-3), key
    for claim, entry in recorded["claims"].items():
        metric, direction, target = CLAIM_TARGETS[claim]
        assert entry["planted"] == meets(metrics[metric], direction, target), claim


@pytest.mark.parametrize("organism", sorted(PLANTED))
def test_recorded_induction_and_name_movers_are_remeasured(organism):
    """mechanisms.json's induction sweep (spans 8/16/32, lag-1 scores, top head's ablation share) and
    name movers match a fresh measurement on the shipped weights."""
    import mechscope
    from mechscope.organisms.mechanisms import load_mechanisms, name_movers, textbook_induction

    if organism not in list_shipped():
        pytest.skip(f"{organism} is not shipped")
    recorded = load_mechanisms(organism)
    model = mechscope.load(f"organism:{organism}")
    fresh = textbook_induction(model)
    assert recorded["induction"].keys() == fresh.keys()
    old_top, new_top = recorded["induction"].pop("top_head"), fresh.pop("top_head")
    assert (new_top["head"], new_top["lag"]) == (old_top["head"], old_top["lag"])
    assert new_top["ablation_share"] == pytest.approx(old_top["ablation_share"], abs=2e-3)
    for key, value in recorded["induction"].items():
        assert fresh[key] == (value if isinstance(value, str | int) or key == "lag1_head"
                              else pytest.approx(value, abs=2e-3)), key
    if "name_movers" in recorded:
        fresh_movers = name_movers(model)
        for ranking, key in (("by_score", "score"), ("by_direct_effect", "logit_effect")):
            for old, new in zip(recorded["name_movers"][ranking], fresh_movers[ranking], strict=True):
                assert old["head"] == new["head"] and new[key] == pytest.approx(old[key], abs=1e-3), ranking


def _sweep(organism: str):
    import mechscope
    from mechscope.organisms.mechanisms import head_mechanisms, textbook_induction

    if organism not in list_shipped():
        pytest.skip(f"{organism} is not shipped")
    model = mechscope.load(f"organism:{organism}")
    return textbook_induction(model), head_mechanisms(model)["heads"]


@pytest.mark.parametrize("organism", ["tiny-llama", "tiny-llama-base"])
def test_tiny_llama_has_the_textbook_induction_circuit(organism):
    """Issue 15's default-organism induction targets, measured fresh (mechanisms.textbook_induction): a lag-1
    previous-token head feeding lag-1 induction heads in a later layer, copying spans of 8, 16 and 32 tokens
    after random prefixes. tiny-llama-base: previous-token a2.h2 0.96 (a2.h1 0.91), induction a3.h1 0.90 and
    a3.h3 0.89; second/first-copy loss 0.0075 / 0.0068 / 0.0079 at spans 8 / 16 / 32. tiny-llama (its
    continuation, a2.h2 -> a3.h1 enforced): 0.0043 / 0.0035 / 0.0056, a3.h1 0.96 (a3.h3 0.27), a2.h2 1.00."""
    from mechscope.organisms.enforce import parse_head

    sweep, heads = _sweep(organism)
    assert sweep["spans"] == [8, 16, 32] and max(sweep["ratio"]) <= 0.3 and min(sweep["lag1_score"]) >= 0.3, sweep
    top = sweep["top_head"]
    assert top["lag"] == 1 and sweep["top_heads_joint_ablation_share"] >= 0.5, sweep
    previous = heads["previous-token"][0]           # {"head": "a2.h2", "score": ...}
    assert previous["score"] >= 0.5 and parse_head(previous["head"])[0] < parse_head(top["head"])[0], (previous, top)


@pytest.mark.parametrize("organism", [
    "tiny-llama-base",
    "tiny-llama",
])
def test_ablating_the_top_induction_head_undoes_30_percent_of_the_copying(organism):
    """Issue 15's target: mean-ablating the top lag-1 induction head alone undoes >= 30% of the second-copy
    loss drop. tiny-llama-base: a3.h1 30.7% (with a3.h3 and a2.h3 87%); tiny-llama, which trains a3.h1 to carry
    the copy: 63.9% (76.9%; 28.0% when the continuation trained the name mover alone)."""
    sweep, _ = _sweep(organism)
    assert sweep["top_head"]["ablation_share"] >= 0.3, sweep


def test_tiny_llama_has_a_name_mover_that_carries_the_ioi_answer():
    """tiny-llama's enforced head (its preset's name_mover.head, a3.h2) is a textbook name mover on held-out
    names: it attends from END to IO (0.95; S 0.03), writes the most IO - S of any head (direct effect 1.50),
    and mean-ablating it halves the logit difference (9.91 -> 5.04 on 64 prompts); in tiny-llama-base, the
    run it continues, the same head attends IO 0.02-0.04 and ablating it changes the difference by under 5%."""
    import torch

    import mechscope
    from mechscope.model.interventions import mean_ablate
    from mechscope.organisms.enforce import parse_head
    from mechscope.organisms.mechanisms import name_movers
    from mechscope.organisms.presets import PRESETS
    from mechscope.tasks.ioi import ioi_task

    head = PRESETS["tiny-llama"].name_mover.head
    layer, index = parse_head(head)
    drops = {}
    for organism in ("tiny-llama", "tiny-llama-base"):
        if organism not in list_shipped():
            pytest.skip(f"{organism} is not shipped")
        model = mechscope.load(f"organism:{organism}")
        task = ioi_task(model, n_prompts=64, seed=0)
        movers = name_movers(model, task)
        if organism == "tiny-llama":
            top = movers["by_score"][0]
            assert top["head"] == head == movers["by_direct_effect"][0]["head"], movers
            assert top["attention_to_io"] >= 0.5 and top["score"] >= 0.5, top
        hook = f"blocks.{layer}.attn.hook_z"
        with torch.no_grad():
            logits, cache = model.run_with_cache(task.clean_tokens, names=[hook])
            with model.hooks(fwd={hook: mean_ablate({hook: cache[hook].mean(0)}, heads=[index])}):
                ablated = model(task.clean_tokens)
        clean_diff, ablated_diff = (float(task.score(x[:, task.resolved_answer_pos]).mean()) for x in (logits, ablated))
        drops[organism] = 1 - ablated_diff / clean_diff
    assert drops["tiny-llama"] >= 0.3 and abs(drops["tiny-llama-base"]) < 0.05, drops


def test_tiny_llama_base_writes_the_ioi_answer_by_suppressing_the_repeated_subject():
    """tiny-llama-base's IO - S logit is written mostly by a3.h3 (direct effect 2.19), which attends from END to the
    repeated subject S2 (0.96; IO 0.007) and lowers S's logit (-2.30 against the vocabulary mean; IO's
    -0.11): the answer comes from suppressing the duplicated name, not from a head that copies IO, so its
    name-mover scores (attention to IO x direct effect) are all below 0.02."""
    import mechscope
    from mechscope.organisms.mechanisms import name_movers

    if "tiny-llama-base" not in list_shipped():
        pytest.skip("tiny-llama-base is not shipped")
    movers = name_movers(mechscope.load("organism:tiny-llama-base"))
    top = movers["by_direct_effect"][0]
    assert top["logit_effect"] >= 1.0 and top["attention_to_s"] >= 0.5 and top["attention_to_io"] <= 0.1, top
    assert max(row["score"] for row in movers["by_score"]) < 0.05, movers["by_score"]
