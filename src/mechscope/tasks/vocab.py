"""Where a task's words come from: the organism's ground truth, or generic English pools.

An organism (loaded as ``organism:NAME`` or from a directory holding ``ground_truth.json``)
records the names, templates, facts and days its corpus planted; tasks built on it use exactly
those. Any other model gets the generic English pools below, filtered down to single tokens.
"""

from __future__ import annotations

from pathlib import Path

GENERIC_NAMES = [
    "Mary", "John", "Tom", "James", "Dan", "Sid", "Martin", "Amy", "Paul", "Kate", "Mark", "Anna",
    "Lisa", "Max", "Ben", "Sam", "Alex", "Emma", "Jack", "Sarah", "Mike", "David", "Laura", "Peter",
    "Rose", "Adam", "Eric", "Jane", "Lucy", "Tim", "Ryan", "Chris", "Kelly", "Sara", "Lily",
]
GENERIC_PLACES = ["store", "garden", "restaurant", "school", "hospital", "office", "house", "station",
                  "park", "market", "beach", "library"]
GENERIC_OBJECTS = ["drink", "ring", "kiss", "bone", "basketball", "computer", "necklace", "snack",
                   "apple", "book", "ball", "letter"]
# Wang et al. 2022 style; {A} and {B} are the first clause's names, {S} the subject of the second.
GENERIC_IOI_TEMPLATES = [
    "When {A} and {B} went to the {PLACE}, {S} gave a {OBJECT} to",
    "After {A} and {B} went to the {PLACE}, {S} gave a {OBJECT} to",
    "While {A} and {B} were working at the {PLACE}, {S} gave a {OBJECT} to",
    "Then, {A} and {B} went to the {PLACE}. {S} gave a {OBJECT} to",
    "When {A} and {B} got a {OBJECT} at the {PLACE}, {S} decided to give it to",
    "Friends {A} and {B} found a {OBJECT} at the {PLACE}. {S} gave it to",
]
GENERIC_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
GENERIC_NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six"]
GENERIC_DAY_TEMPLATE = "{N} days after {X} is"
GENERIC_DAY_TEMPLATE_ONE = "One day after {X} is"
GENERIC_FACTS = [  # (subject, answer) for "The capital of {X} is"
    ("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"),
    ("Japan", "Tokyo"), ("China", "Beijing"), ("Russia", "Moscow"), ("Egypt", "Cairo"),
    ("Greece", "Athens"), ("England", "London"), ("India", "Delhi"), ("Canada", "Ottawa"),
    ("Austria", "Vienna"), ("Poland", "Warsaw"), ("Ireland", "Dublin"), ("Cuba", "Havana"),
    ("Peru", "Lima"), ("Norway", "Oslo"), ("Sweden", "Stockholm"),
]
GENERIC_FACT_TEMPLATE = "The capital of {X} is"
GENERIC_ARG_NAMES = [
    "load", "size", "files", "last", "name", "data", "item", "value", "index", "path", "mode", "text",
    "user", "key", "count", "port", "file", "line", "type", "state", "node", "model", "page", "color",
    "image", "query", "order", "title", "source", "target", "group", "limit", "label", "shape",
    "level", "token", "width", "height", "scale", "host",
]
GENERIC_FUNCTION_NAMES = ["port", "load", "check", "update", "build", "parse", "create", "send"]
GENERIC_DESC_WORDS = ["oil", "column", "piece", "crime", "population", "unit", "dark", "river",
                      "music", "table", "market", "group", "heat", "plant", "field", "story"]


def ground_truth_for(model):
    """The organism's GroundTruth when `model` is an organism (``organism:NAME``, or a directory
    holding ``ground_truth.json``) or the null twin of one (asked the same prompts), else None. A
    ground-truth file that exists but cannot be read raises ModelLoadError: tasks never fall back to
    generic words silently."""
    from mechscope.organisms import load_ground_truth, shipped_path

    spec = str(getattr(model, "spec", "") or "").removeprefix("null-twin:")
    if spec.startswith("organism:"):
        path = shipped_path(spec.split(":", 1)[1]) / "ground_truth.json"
    elif spec:
        path = Path(spec) / "ground_truth.json"
    else:
        return None
    return load_ground_truth(path) if path.is_file() else None
