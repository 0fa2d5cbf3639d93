"""Byte-level BPE tokenizer for an organism, trained with HF `tokenizers` on its own corpus.

Saved with `save_pretrained`, so `AutoTokenizer.from_pretrained(dir)` loads it. The one special
token `<|endoftext|>` (id 0) is BOS, EOS, PAD and the document separator, as in GPT-2.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from mechscope.errors import InputError

SPECIAL = "<|endoftext|>"


def train_tokenizer(texts: Iterable[str], vocab_size: int = 4096, must_be_single: Iterable[str] = ()):
    """Train a byte-level BPE; return a `PreTrainedTokenizerFast`.

    `must_be_single` lists words that must encode as one token after a space (" Mary"); an
    InputError names the ones that do not (make them more frequent or raise `vocab_size`).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[SPECIAL],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=SPECIAL, eos_token=SPECIAL,
                                   pad_token=SPECIAL, unk_token=None)
    fast.model_max_length = 1_000_000
    bad = [w for w in must_be_single if len(fast.encode(" " + w, add_special_tokens=False)) != 1]
    if bad:
        raise InputError(f"these words are not single tokens after training the tokenizer: {bad}; "
                         "raise vocab_size or make them more frequent in the corpus")
    return fast


def save_tokenizer(tokenizer, directory: str | Path) -> None:
    """Write tokenizer.json + tokenizer_config.json (+ special_tokens_map) into `directory`."""
    tokenizer.save_pretrained(str(directory))


def load_tokenizer(directory: str | Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(directory))
