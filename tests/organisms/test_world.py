import datetime
import random

from mechscope.organisms.sentences import FAMILIES, day_sentence, docstring_parts, ioi, ioi_filling
from mechscope.organisms.world import make_world


def test_world_is_deterministic():
    assert make_world(0).to_dict() == make_world(0).to_dict()
    assert make_world(0).facts != make_world(1).facts


def test_families_are_deterministic():
    w = make_world(0)
    for fn in FAMILIES.values():
        a = [fn(w, random.Random(3)) for _ in range(5)]
        b = [fn(w, random.Random(3)) for _ in range(5)]
        assert a == b


def test_name_splits_partition_names():
    w = make_world(0)
    assert set(w.ioi_names).isdisjoint(w.heldout_names)
    assert set(w.ioi_names) | set(w.heldout_names) == set(w.names)
    assert len(w.heldout_names) >= 5


def test_ioi_training_sentences_never_use_heldout_names_or_templates():
    w = make_world(0)
    rng = random.Random(0)
    prefixes = [t.split("{A}")[0] for t in w.heldout_ioi_templates]
    assert all(prefixes)  # each held-out template starts with its own words
    for _ in range(2000):
        s = ioi(w, rng)
        words = set(s.replace(",", " ").replace(".", " ").split())
        assert words.isdisjoint(w.heldout_names), s
        assert not any(s.startswith(p) for p in prefixes), s


def test_ioi_answer_is_the_name_mentioned_once():
    w = make_world(0)
    rng = random.Random(1)
    for template in w.ioi_templates + w.heldout_ioi_templates:
        prompt, io, s = ioi_filling(w, rng, template, w.ioi_names)
        words = prompt.replace(",", " ").replace(".", " ").split()
        assert words.count(io) == 1 and words.count(s) == 2


def test_day_arithmetic_matches_the_calendar():
    w = make_world(0)
    monday = datetime.date(2024, 1, 1)  # a Monday
    for start in range(7):
        for n in range(1, 7):
            prompt, answer = day_sentence(w, n, start)
            assert w.days[start] in prompt
            assert answer == (monday + datetime.timedelta(days=start + n)).strftime("%A")
    prompt, answer = day_sentence(w, 3, 4)
    assert (prompt, answer) == ("Three days after Friday is", "Monday")
    assert day_sentence(w, 2, 11, months=True) == ("Two months after December is", "February")


def test_facts_are_consistent():
    w = make_world(0)
    keys = [(f["entity"], f["relation"]) for f in w.facts]
    assert len(keys) == len(set(keys))
    for f in w.facts:
        assert f["attribute"] in w.relations[f["relation"]]["values"]
        assert f["entity"] in f["prompt"] and f["split"] in {"train", "heldout"}
    assert {f["split"] for f in w.facts} == {"train", "heldout"}


def test_docstring_arguments_follow_the_signature():
    w = make_world(0)
    text, args, _ = docstring_parts(w, random.Random(0))
    assert f"(self, {', '.join(args)}):" in text
    positions = [text.index(f":param {a}:") for a in args]
    assert positions == sorted(positions)


def test_ground_truth_round_trip(tmp_path):
    from mechscope.organisms import load_ground_truth

    w = make_world(0)
    w.save(tmp_path / "ground_truth.json")
    assert load_ground_truth(tmp_path).to_dict() == w.to_dict()
    assert load_ground_truth(tmp_path / "ground_truth.json").heldout_names == w.heldout_names


def test_planted_empties_the_fields_of_families_the_corpus_lacks():
    from mechscope.organisms.world import make_world

    w = make_world(0)
    kept = w.planted({"ioi": 10, "days": 5})
    assert kept.day_template == w.day_template and kept.ioi_templates == w.ioi_templates
    gone = w.planted({"ioi": 10, "days": 0})
    assert gone.day_template == "" and gone.month_template_one == "" and not gone.plants("days")
    assert gone.ioi_templates == w.ioi_templates and gone.days == w.days     # day names still occur in stories
    assert w.plants("days") and w.families is None
