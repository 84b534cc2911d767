"""The reference port reproduces Google's published tokenization test cases."""

import sys

import pytest

from tests.text import reference_tokenizer as ref


def test_basic_tokenizer_lower():
    tokenizer = ref.BasicTokenizer(do_lower_case=True)
    assert tokenizer.tokenize(" \tHeLLo!how  \n Are yoU?  ") == \
        ["hello", "!", "how", "are", "you", "?"]
    assert tokenizer.tokenize("H\u00E9llo") == ["hello"]


def test_basic_tokenizer_no_lower():
    tokenizer = ref.BasicTokenizer(do_lower_case=False)
    assert tokenizer.tokenize(" \tHeLLo!how  \n Are yoU?  ") == \
        ["HeLLo", "!", "how", "Are", "yoU", "?"]


def test_chinese():
    assert ref.BasicTokenizer().tokenize("ah\u535A\u63A8zz") == \
        ["ah", "\u535A", "\u63A8", "zz"]


def test_wordpiece_tokenizer():
    vocab_tokens = ["[UNK]", "[CLS]", "[SEP]", "want", "##want", "##ed", "wa", "un",
                    "runn", "##ing"]
    tokenizer = ref.WordpieceTokenizer({t: i for i, t in enumerate(vocab_tokens)})
    assert tokenizer.tokenize("") == []
    assert tokenizer.tokenize("unwanted running") == ["un", "##want", "##ed", "runn", "##ing"]
    assert tokenizer.tokenize("unwantedX running") == ["[UNK]", "runn", "##ing"]


def test_character_classes():
    assert ref.is_whitespace(" ") and ref.is_whitespace("\t") and ref.is_whitespace("\u00A0")
    assert not ref.is_whitespace("A") and not ref.is_whitespace("-")
    assert ref.is_control("\u0005")
    assert not ref.is_control("A") and not ref.is_control(" ") and not ref.is_control("\t")
    assert not ref.is_control("\r")
    assert ref.is_punctuation("-") and ref.is_punctuation("$") and ref.is_punctuation("`")
    assert ref.is_punctuation(".")
    assert not ref.is_punctuation("A") and not ref.is_punctuation(" ")


def test_full_tokenizer(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[UNK]", "[CLS]", "[SEP]", "want", "##want", "##ed",
                                "wa", "un", "runn", "##ing", ","]) + "\n")
    tokenizer = ref.FullTokenizer(str(vocab), do_lower_case=True)
    tokens = tokenizer.tokenize("UNwant\u00E9d,running")
    assert tokens == ["un", "##want", "##ed", ",", "runn", "##ing"]
    assert tokenizer.convert_tokens_to_ids(tokens) == [7, 4, 5, 10, 8, 9]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
