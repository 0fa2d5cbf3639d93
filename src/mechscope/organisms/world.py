"""A seeded synthetic world and its ground truth: the facts the organisms' corpus plants.

`make_world(seed)` draws everything at random from fixed pools, so the same seed always gives
the same world. The `GroundTruth` it returns is saved as `ground_truth.json` next to every
organism; task builders (IOI, induction, facts, days, docstring) read it to build prompts.

Fields of `GroundTruth` (all strings are written without a leading space; in text every name,
attribute, day, month and argument follows a space, and " " + word is one token of the
organism's tokenizer, checked when the tokenizer is trained):

- ``names``: every person name in the world (single tokens).
- ``ioi_names`` / ``heldout_names``: names used in IOI training sentences / names that never
  occur in an IOI sentence during training (they do occur in stories and lists) - evaluate IOI
  on these.
- ``places``, ``objects``: nouns used in IOI and stories.
- ``ioi_templates`` / ``heldout_ioi_templates``: templates with ``{A}``, ``{B}``, ``{PLACE}``,
  ``{OBJECT}``; the first clause names A then B; the second clause's subject is ``{S}`` and the
  answer is the indirect object ``{IO}``. Filling: ABBA means (A=IO, B=S), BABA means (A=S, B=IO).
  The prompt is the filled template; the answer is " " + IO. Held-out templates never occur in
  training.
- ``facts``: list of dicts ``{entity, relation, attribute, prompt, question, split}``:
  ``prompt`` (e.g. "The color of the zorvin is") is the statement form used in training and for
  recall; answer " " + attribute. ``question`` is a Q/A form; ``split`` is "train" if the question
  form also occurs in training, "heldout" if only the statement does.
- ``relations``: relation name -> {"statement": template, "question": template, "values": [...]}.
- ``days``, ``months``, ``number_words`` (number_words[n] is the word for n, n = 0..12).
- ``day_template`` / ``month_template``: e.g. "{N} days after {X} is" -> " " + answer;
  ``N`` is capitalised number word; days use n in 1..6, months n in 1..11; "One day" singular
  via ``day_template_one`` / ``month_template_one``.
- ``docstring``: {"arg_names": [...], "function_names": [...], "template": ..., "n_args": [lo, hi]}
  where the prompt is the function up to and including the last ``:param`` line's "    :param"
  and the answer is " " + next argument in signature order.
- ``induction``: {"span_min": int, "span_max": int, "repeats": [2, 3]} of random-token spans.
- ``count_items``: nouns used in the lists/counting family.
- ``families``: tokens per corpus family the organism was trained on (None in files written before
  it was recorded). Fields of a family the corpus did not contain are emptied (`planted`): an
  organism that never saw day arithmetic has no day templates.
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path
from typing import Any

from mechscope.errors import ModelLoadError
from mechscope.io import write_json_atomic

NAMES = [
    "Mary", "John", "Tom", "Anna", "James", "Sarah", "Paul", "Emma", "David", "Lucy", "Mark",
    "Kate", "Peter", "Alice", "Jack", "Rose", "Sam", "Lily", "Ben", "Grace", "Max", "Ruth",
    "Adam", "Jane", "Luke", "Amy", "Noah", "Eve", "Leo", "Ivy", "Dan", "Nina", "Carl", "Zoe",
    "Hugo", "Ella", "Fred", "Olga", "Ian", "Tina",
]
PLACES = ["store", "park", "school", "garden", "market", "river", "forest", "station", "library",
          "beach", "farm", "castle", "kitchen", "church", "bakery", "harbor"]
OBJECTS = ["drink", "book", "ball", "letter", "flower", "ring", "cake", "key", "hat", "basket",
           "coin", "lamp", "kite", "shell", "apple", "knife"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                "ten", "eleven", "twelve"]
RELATIONS = {
    "color": {"statement": "The color of the {E} is", "question": "Q: What color is the {E}? A:",
              "values": ["red", "blue", "green", "yellow", "purple", "orange", "white", "black",
                         "gray", "brown", "pink", "gold"]},
    "home": {"statement": "The {E} lives in the", "question": "Q: Where does the {E} live? A: the",
             "values": ["forest", "desert", "mountains", "river", "valley", "city", "village",
                        "cave", "island", "swamp", "meadow", "ocean"]},
    "food": {"statement": "The favorite food of the {E} is",
             "question": "Q: What does the {E} like to eat? A:",
             "values": ["bread", "cheese", "fish", "rice", "honey", "soup", "corn", "berries",
                        "nuts", "milk", "eggs", "grapes"]},
}
SYLLABLES = ["zor", "vin", "bla", "kee", "mun", "dro", "pel", "quo", "rak", "sil", "tem", "wob",
             "gri", "fen", "lux", "nar", "oth", "yip", "hub", "cra"]
ARG_NAMES = ["path", "mode", "size", "name", "value", "key", "count", "index", "data", "text",
             "user", "item", "limit", "start", "end", "width", "height", "color", "source",
             "target", "level", "label", "step", "scale", "format", "result", "state", "query",
             "token", "field", "table", "order", "group", "page", "port", "host"]
FUNCTION_VERBS = ["load", "save", "get", "set", "make", "find", "read", "write", "send", "parse",
                  "build", "check", "update", "remove", "create", "open"]
COUNT_ITEMS = ["apples", "pears", "cups", "stones", "birds", "boats", "coins", "hats", "books",
               "eggs", "lamps", "shells"]

IOI_TEMPLATES = [
    "When {A} and {B} went to the {PLACE}, {S} gave a {OBJECT} to",
    "After {A} and {B} arrived at the {PLACE}, {S} handed a {OBJECT} to",
    "Then, {A} and {B} were working at the {PLACE}. {S} decided to give a {OBJECT} to",
    "While {A} and {B} were walking to the {PLACE}, {S} threw a {OBJECT} to",
    "{A} and {B} had a long day at the {PLACE}. Later, {S} brought a {OBJECT} to",
    "When {A} and {B} got a {OBJECT} at the {PLACE}, {S} decided to give it to",
    "Friends {A} and {B} found a {OBJECT} at the {PLACE}. {S} gave the {OBJECT} to",
    "At the {PLACE}, {A} and {B} talked for hours. Then {S} passed a {OBJECT} to",
]
HELDOUT_IOI_TEMPLATES = [
    "The day {A} and {B} went to the {PLACE}, {S} sent a {OBJECT} to",
    "Once {A} and {B} met at the {PLACE}, {S} offered a {OBJECT} to",
]
DOCSTRING_TEMPLATE = ('def {FUNC}(self, {ARGS}):\n    """{SUMMARY}\n\n{PARAMS}    """\n'
                      "    return None\n")


FAMILY_FIELDS = {  # corpus family -> the GroundTruth fields only that family's documents use
    "days": ("day_template", "day_template_one", "month_template", "month_template_one"),
    "ioi": ("ioi_templates", "heldout_ioi_templates"),
}


@dataclasses.dataclass
class GroundTruth:
    """Everything planted in an organism's corpus; see the module docstring for each field."""

    seed: int
    names: list[str]
    ioi_names: list[str]
    heldout_names: list[str]
    places: list[str]
    objects: list[str]
    ioi_templates: list[str]
    heldout_ioi_templates: list[str]
    facts: list[dict[str, str]]
    relations: dict[str, dict[str, Any]]
    days: list[str]
    months: list[str]
    number_words: list[str]
    day_template: str
    day_template_one: str
    month_template: str
    month_template_one: str
    docstring: dict[str, Any]
    induction: dict[str, Any]
    count_items: list[str]
    families: dict[str, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> Path:
        return write_json_atomic(path, self.to_dict())

    def plants(self, family: str) -> bool:
        """Whether the organism's corpus contained `family` (True when not recorded)."""
        return self.families is None or self.families.get(family, 0) > 0

    def planted(self, families: dict[str, int]) -> GroundTruth:
        """A copy that records `families` (tokens per corpus family) and empties the templates of the
        families with no tokens, so nothing lists a task the corpus never had."""
        out = dataclasses.replace(self, families=dict(families))
        for family, fields in FAMILY_FIELDS.items():
            if not out.plants(family):
                out = dataclasses.replace(out, **{k: type(getattr(out, k))() for k in fields})
        return out

    @property
    def entities(self) -> list[str]:
        return sorted({f["entity"] for f in self.facts})

    def fact_answer(self, entity: str, relation: str) -> str:
        for f in self.facts:
            if f["entity"] == entity and f["relation"] == relation:
                return f["attribute"]
        raise KeyError((entity, relation))

    def single_token_words(self) -> list[str]:
        """Words that must be single tokens (with a leading space) in the organism's tokenizer."""
        words = set(self.names) | set(self.days) | set(self.months) | set(self.docstring["arg_names"])
        for rel in self.relations.values():
            words |= set(rel["values"])
        return sorted(words)


def _entities(rng: random.Random, n: int) -> list[str]:
    out: set[str] = set()
    while len(out) < n:
        out.add("".join(rng.sample(SYLLABLES, 2)))
    return sorted(out)


def make_world(seed: int = 0, n_entities: int = 40, n_heldout_names: int = 8,
               heldout_fact_fraction: float = 0.25) -> GroundTruth:
    """Draw a world. Same seed -> same world, on every machine."""
    rng = random.Random(seed)
    names = list(NAMES)
    rng.shuffle(names)
    heldout_names = sorted(names[:n_heldout_names])
    ioi_names = sorted(names[n_heldout_names:])
    facts = []
    for entity in _entities(rng, n_entities):
        for rel_name, rel in RELATIONS.items():
            facts.append({
                "entity": entity, "relation": rel_name, "attribute": rng.choice(rel["values"]),
                "prompt": rel["statement"].format(E=entity),
                "question": rel["question"].format(E=entity),
                "split": "heldout" if rng.random() < heldout_fact_fraction else "train",
            })
    return GroundTruth(
        seed=seed, names=sorted(NAMES), ioi_names=ioi_names, heldout_names=heldout_names,
        places=list(PLACES), objects=list(OBJECTS), ioi_templates=list(IOI_TEMPLATES),
        heldout_ioi_templates=list(HELDOUT_IOI_TEMPLATES), facts=facts, relations=RELATIONS,
        days=list(DAYS), months=list(MONTHS), number_words=list(NUMBER_WORDS),
        day_template="{N} days after {X} is", day_template_one="One day after {X} is",
        month_template="{N} months after {X} is", month_template_one="One month after {X} is",
        docstring={"arg_names": list(ARG_NAMES), "function_verbs": list(FUNCTION_VERBS),
                   "template": DOCSTRING_TEMPLATE, "param_line": "    :param {ARG}: {DESC}\n",
                   "n_args": [3, 5]},
        induction={"span_min": 8, "span_max": 30, "repeats": [2, 3]},
        count_items=list(COUNT_ITEMS),
    )


def load_ground_truth(path_or_name: str | Path) -> GroundTruth:
    """Read `ground_truth.json` from a file, an organism directory, or a shipped organism name."""
    from mechscope.organisms.shipped import organism_file

    path = organism_file(path_or_name, "ground_truth.json",
                         "pass an organism directory that was written by `mechscope organism train`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        fields = {f.name for f in dataclasses.fields(GroundTruth)}
        return GroundTruth(**{k: v for k, v in data.items() if k in fields})
    except (ValueError, TypeError, AttributeError) as e:  # bad JSON / encoding, missing or extra fields
        raise ModelLoadError(f"{path} is not a readable ground truth ({type(e).__name__}: {e}); restore it "
                             "from the organism's training run or retrain with `mechscope organism train`") from e
