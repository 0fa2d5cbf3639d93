"""Concepts as counterfactual word pairs (Park et al. 2023): the built-in pairs, reading pairs from a
file, and the check that every word is one known token for the model.

    pairs = concept_pairs(model, "plural", [("cat", "cats"), ("dog", "dogs"), ("man", "men")])
    concepts = default_concepts(model)      # the built-in concepts this model's vocabulary supports
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from mechscope.errors import InputError, NotApplicableError

MIN_PAIRS = 3

# Counterfactual pairs in the organisms' vocabulary (and ordinary English); each is kept only when both
# words are single tokens (with a leading space) for the model at hand.
DEFAULT_CONCEPTS: dict[str, list[tuple[str, str]]] = {
    "singular→plural": [
        ("apple", "apples"), ("bird", "birds"), ("book", "books"), ("coin", "coins"), ("egg", "eggs"),
        ("hat", "hats"), ("lamp", "lamps"), ("shell", "shells"), ("son", "sons"), ("friend", "friends"),
        ("hand", "hands"), ("day", "days"), ("month", "months"), ("year", "years"), ("hour", "hours"),
        ("eye", "eyes"), ("thing", "things"), ("name", "names"), ("word", "words"), ("servant", "servants"),
        ("man", "men"), ("father", "fathers"), ("god", "gods"), ("cat", "cats"), ("dog", "dogs"),
        ("tree", "trees"), ("house", "houses"), ("car", "cars"), ("river", "rivers")],
    "lower→capitalised": [
        ("the", "The"), ("and", "And"), ("he", "He"), ("she", "She"), ("it", "It"), ("if", "If"),
        ("what", "What"), ("when", "When"), ("where", "Where"), ("king", "King"), ("lord", "Lord"),
        ("we", "We"), ("you", "You"), ("this", "This"), ("they", "They"), ("then", "Then"), ("there", "There"),
        ("so", "So"), ("with", "With"), ("for", "For"), ("no", "No"), ("now", "Now"), ("my", "My"),
        ("his", "His"), ("who", "Who"), ("how", "How"), ("one", "One"), ("two", "Two"), ("three", "Three"),
        ("come", "Come"), ("go", "Go"), ("lady", "Lady"), ("well", "Well"), ("cat", "Cat"), ("dog", "Dog"),
        ("bird", "Bird"), ("tree", "Tree"), ("house", "House"), ("car", "Car"), ("book", "Book"),
        ("river", "River")],
    "male→female": [
        ("he", "she"), ("him", "her"), ("father", "mother"), ("son", "daughter"), ("brother", "sister"),
        ("husband", "wife"), ("man", "woman"), ("lord", "lady"), ("king", "queen"), ("boy", "girl"),
        ("his", "her"), ("men", "women"), ("uncle", "aunt")],
}


@dataclasses.dataclass
class ConceptPairs:
    """A concept as counterfactual token pairs: base_ids[i] → target_ids[i] ([n] each)."""

    name: str
    base_words: list[str]
    target_words: list[str]
    base_ids: list[int]
    target_ids: list[int]

    def __len__(self) -> int:
        return len(self.base_ids)


def known_token(model, text: str) -> int | None:
    """The id of `text` when it is one token and not the tokenizer's unknown token, else None."""
    if not model.is_single_token(text):
        return None
    token = model.to_single_token(text)
    return None if token == model.tokenizer.unk_token_id else token


def concept_pairs(model, name: str, pairs: Sequence[tuple[str, str]], *, prefix: str = " ",
                  strict: bool = True) -> ConceptPairs:
    """Token ids of `pairs` (words as written; `prefix` is put before each, a space by default).

    strict: raise InputError naming every multi-token word; otherwise drop the pairs that have one.
    Raises InputError when fewer than 3 pairs remain or a pair has the same token twice.
    """
    kept, bad = [], []
    for pair in pairs:
        if len(pair) != 2:
            raise InputError(f"concept {name!r}: each pair must be (base word, target word); got {pair!r}")
        ids = [known_token(model, prefix + w) for w in pair]
        multi = [w for w, i in zip(pair, ids, strict=True) if i is None]
        if multi:
            bad.extend(multi)
            continue
        if ids[0] == ids[1]:
            raise InputError(f"concept {name!r}: the pair {pair!r} is the same token twice")
        kept.append((pair, ids[0], ids[1]))
    if bad and strict:
        raise InputError(
            f"concept {name!r}: these words are not single known tokens for this model (with prefix {prefix!r}): "
            f"{', '.join(repr(w) for w in bad[:12])}; concept directions need one-token words, so drop or "
            "replace those pairs")
    if len(kept) < MIN_PAIRS:
        raise InputError(f"concept {name!r} has {len(kept)} usable pairs; a direction needs at least {MIN_PAIRS} "
                         "(a leave-one-out test needs several); add pairs")
    return ConceptPairs(name, [p[0] for p, _, _ in kept], [p[1] for p, _, _ in kept],
                        [b for _, b, _ in kept], [t for _, _, t in kept])


def read_pairs(path) -> list[tuple[str, str]]:
    """Word pairs from a text file: one "base<TAB>target" (or "base target") per line; # starts a comment."""
    from pathlib import Path

    pairs = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        if len(parts) != 2:
            raise InputError(f"{path}:{n}: expected two words (base and target), got {line!r}")
        pairs.append((parts[0].strip(), parts[1].strip()))
    return pairs


def default_concepts(model, min_concepts: int = 2) -> dict[str, ConceptPairs]:
    """The DEFAULT_CONCEPTS whose single-token pairs number at least 3 for this model.

    Raises NotApplicableError when fewer than `min_concepts` concepts survive (the vocabulary lacks them).
    """
    out = {}
    for name, pairs in DEFAULT_CONCEPTS.items():
        try:
            out[name] = concept_pairs(model, name, pairs, strict=False)
        except InputError:
            continue
    if len(out) < min_concepts:
        raise NotApplicableError(f"only {len(out)} of the {len(DEFAULT_CONCEPTS)} built-in concepts have ≥ "
                                 f"{MIN_PAIRS} single-token word pairs for this model; pass your own pairs")
    return out
