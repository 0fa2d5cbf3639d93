from transformers import AutoTokenizer, PreTrainedTokenizerFast

from mechscope.organisms.world import make_world


def test_round_trip_and_single_tokens(micro_run):
    _, final = micro_run
    tok = AutoTokenizer.from_pretrained(final)
    assert isinstance(tok, PreTrainedTokenizerFast)
    for text in ["When Mary and John went to the store, John gave a drink to Mary.",
                 'def f(self, a, b):\n    """Doc."""\n', "naïve café — 東京 🙂", "  spaces\t\ttabs\n\n"]:
        ids = tok.encode(text, add_special_tokens=False)
        assert tok.decode(ids) == text
    for word in make_world(0).single_token_words():
        assert len(tok.encode(" " + word, add_special_tokens=False)) == 1, word
    assert tok.bos_token == tok.eos_token == "<|endoftext|>"
    assert tok.convert_tokens_to_ids("<|endoftext|>") == 0


def test_tokenizer_failure_names_the_words():
    import pytest

    from mechscope.errors import InputError
    from mechscope.organisms.tokenizer import train_tokenizer

    with pytest.raises(InputError, match="Zyxwvut"):
        train_tokenizer(["hello world"] * 10, vocab_size=300, must_be_single=["Zyxwvut"])
