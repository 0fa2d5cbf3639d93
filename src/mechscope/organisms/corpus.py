"""The training corpus: planted-mechanism families mixed with natural English text.

`build_corpus` returns token arrays (uint16 numpy) for training and for held-out natural text.
Everything is seeded: same world, config and text files -> the same tokens.

Shares are fractions of training tokens per family; "natural" comes from the text files
(plain or .gz), "induction" is random token spans repeated in the same context (token level).
"""

from __future__ import annotations

import dataclasses
import gzip
import random
from pathlib import Path

import numpy as np

from mechscope.errors import InputError
from mechscope.organisms.sentences import FAMILIES
from mechscope.organisms.tokenizer import train_tokenizer
from mechscope.organisms.world import GroundTruth

DEFAULT_SHARES = {
    "natural": 0.12, "narrative": 0.06, "ioi": 0.22, "induction": 0.12, "docstring": 0.2,
    "facts": 0.12, "days": 0.09, "lists": 0.07,
}


@dataclasses.dataclass
class CorpusConfig:
    """How much text and of which kinds. `natural_paths` are plain or gzip text files."""

    train_tokens: int = 4_000_000
    shares: dict[str, float] = dataclasses.field(default_factory=lambda: dict(DEFAULT_SHARES))
    natural_paths: list[str] = dataclasses.field(default_factory=list)
    natural_chunk_chars: int = 800
    heldout_every: int = 20          # every k-th natural chunk is held out for evaluation
    heldout_tokens: int = 40_000
    vocab_size: int = 4096
    tokenizer_sample_docs: int = 4_000   # synthetic documents per family to train the tokenizer


def read_text(path: str | Path) -> str:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"text file not found: {path}; pass existing .txt or .txt.gz paths")
    raw = gzip.open(path, "rb").read() if path.suffix == ".gz" else path.read_bytes()
    return raw.decode("utf-8", errors="replace")


def text_files(paths: list[str | Path]) -> list[str]:
    """Expand directories to their *.txt and *.txt.gz files (sorted); files pass through in order."""
    out: list[str] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.name.endswith((".txt", ".txt.gz")))
            if not found:
                raise InputError(f"no .txt or .txt.gz files in {path}; pass text files or a folder of them")
            out += [str(p) for p in found]
        else:
            out.append(str(path))
    return out


def natural_chunks(paths: list[str], chunk_chars: int) -> list[str]:
    """Split each file into ~chunk_chars pieces on line boundaries, whitespace normalised."""
    chunks = []
    for path in paths:
        buf: list[str] = []
        size = 0
        for line in read_text(path).splitlines():
            line = " ".join(line.split())
            if not line:
                continue
            buf.append(line)
            size += len(line) + 1
            if size >= chunk_chars:
                chunks.append(" ".join(buf))
                buf, size = [], 0
        if buf:
            chunks.append(" ".join(buf))
    return chunks


def induction_tokens(rng: np.random.Generator, vocab_size: int, span_min: int, span_max: int,
                     repeats: list[int]) -> list[int]:
    """One document: a random-token span (ids 1..vocab-1) repeated 2 or 3 times in a row."""
    span = rng.integers(1, vocab_size, size=int(rng.integers(span_min, span_max + 1))).tolist()
    return span * int(rng.choice(repeats))


@dataclasses.dataclass
class Corpus:
    tokenizer: object
    train: np.ndarray          # [n_tokens] uint16, documents separated by <|endoftext|> (id 0)
    heldout_natural: np.ndarray  # [n_tokens] uint16
    family_tokens: dict[str, int]


def _synthetic_docs(world: GroundTruth, family: str, rng: random.Random, n: int) -> list[str]:
    fn = FAMILIES[family]
    return [fn(world, rng) for _ in range(n)]


def build_corpus(world: GroundTruth, cfg: CorpusConfig, seed: int = 0) -> Corpus:
    unknown = set(cfg.shares) - set(FAMILIES) - {"natural", "induction"}
    if unknown:
        raise InputError(f"unknown corpus families {sorted(unknown)}; known: "
                         f"{sorted(set(FAMILIES) | {'natural', 'induction'})}")
    rng = random.Random(seed)
    chunks = natural_chunks(cfg.natural_paths, cfg.natural_chunk_chars) if cfg.natural_paths else []
    if cfg.shares.get("natural", 0) > 0 and not chunks:
        raise InputError("the corpus asks for natural text but no text files were given; pass "
                         "--text PATH (plain or .gz English text) or set the natural share to 0")
    heldout = chunks[::cfg.heldout_every]
    train_chunks = [c for i, c in enumerate(chunks) if i % cfg.heldout_every]
    synth_sample = {f: _synthetic_docs(world, f, rng, cfg.tokenizer_sample_docs)
                    for f in FAMILIES if cfg.shares.get(f, 0) > 0}
    tok_texts = [d for docs in synth_sample.values() for d in docs] + train_chunks
    # the planted words must be single tokens: make sure BPE sees them often enough
    tok_texts += [" " + " ".join(world.single_token_words())] * 1000
    tokenizer = train_tokenizer(tok_texts, cfg.vocab_size, world.single_token_words())
    eos = tokenizer.convert_tokens_to_ids("<|endoftext|>")

    docs: list[list[int]] = []
    family_tokens: dict[str, int] = {}
    for family, share in cfg.shares.items():
        quota, got = int(share * cfg.train_tokens), 0
        if family == "induction":
            nrng = np.random.default_rng(seed + 1)
            while got < quota:
                ids = induction_tokens(nrng, len(tokenizer), world.induction["span_min"],
                                       world.induction["span_max"], world.induction["repeats"])
                docs.append(ids)
                got += len(ids) + 1
        else:
            while got < quota:
                if family == "natural":
                    texts = [rng.choice(train_chunks) for _ in range(256)]
                else:
                    texts = _synthetic_docs(world, family, rng, 512)
                for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
                    docs.append(ids)
                    got += len(ids) + 1
                    if got >= quota:
                        break
        family_tokens[family] = got
    rng.shuffle(docs)
    train = np.fromiter((t for d in docs for t in [eos, *d]), dtype=np.uint16)
    held: list[int] = []
    for ids in tokenizer(heldout, add_special_tokens=False)["input_ids"] if heldout else []:
        held += [eos, *ids]
        if len(held) >= cfg.heldout_tokens:
            break
    return Corpus(tokenizer, train, np.asarray(held, dtype=np.uint16), family_tokens)
