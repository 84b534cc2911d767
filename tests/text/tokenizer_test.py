"""BertTokenizer: behaviour on a small vocabulary, offsets, bad input, graph use."""

import sys

import numpy as np
import pytest
import tensorflow as tf

from keras_bert_app.text.tokenizer import BertTokenizer, whitespace_token_offsets
from keras_bert_app.text.vocab import load_vocab, vocab_fingerprint
from tests.helpers import ragged_to_lists
from tests.text.reference_tokenizer import BasicTokenizer

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "want", "##want", "##ed", "wa",
         "un", "runn", "##ing", ",", ".", "hello", "world", "!", "cafe", "Hello",
         "\u535A", "x", "##x"]


def pieces(tokenizer, texts):
    ids = ragged_to_lists(tokenizer.tokenize(tf.constant(texts)))
    return [[[tokenizer.vocab[i] for i in word] for word in row] for row in ids]


@pytest.fixture
def tokenizer():
    return BertTokenizer(VOCAB, lower_case=True)


def test_google_examples(tokenizer):
    assert pieces(tokenizer, ["UNwant\u00E9d,running"]) == [
        [["un", "##want", "##ed"], [","], ["runn", "##ing"]]]
    # A word with an unmatchable piece is [UNK] whole (cased: "X" is not in VOCAB).
    cased = BertTokenizer(VOCAB, lower_case=False)
    assert pieces(cased, ["unwantedX running"]) == [[["[UNK]"], ["runn", "##ing"]]]


def test_ids_are_int32_and_grouped_by_word(tokenizer):
    ids = tokenizer.tokenize(tf.constant(["hello world!", ""]))
    assert ids.dtype == tf.int32 and ids.shape.rank == 3
    assert ragged_to_lists(ids) == [[[14], [15], [16]], []]


def test_cased_keeps_case_and_accents():
    cased = BertTokenizer(VOCAB, lower_case=False)
    assert pieces(cased, ["Hello café"]) == [[["Hello"], ["[UNK]"]]]


def test_words_over_200_characters_are_unknown(tokenizer):
    assert pieces(tokenizer, ["x" * 200]) == [[["x"] + ["##x"] * 199]]
    assert pieces(tokenizer, ["x" * 201 + " hello"]) == [[["[UNK]"], ["hello"]]]
    short = BertTokenizer(VOCAB, max_chars_per_word=3)
    assert pieces(short, ["xxx xxxx"]) == [[["x", "##x", "##x"], ["[UNK]"]]]


def test_offsets_point_into_the_original_bytes(tokenizer):
    text = "Héllo,\u00a0UNwanted  \u535Ax"
    ids, starts, limits = tokenizer.tokenize_with_offsets(tf.constant([text]))
    raw = text.encode("utf-8")
    spans = [[raw[a:b].decode() for a, b in zip(s, l)]
             for s, l in zip(ragged_to_lists(starts)[0], ragged_to_lists(limits)[0])]
    assert spans == [["Héllo"], [","], ["UN", "want", "ed"], ["\u535A"], ["x"]]
    assert ragged_to_lists(ids) == ragged_to_lists(tokenizer.tokenize(tf.constant([text])))


def test_offsets_of_a_long_word_cover_it_whole(tokenizer):
    text = "ok " + "é" * 201
    _, starts, limits = tokenizer.tokenize_with_offsets(tf.constant([text]))
    assert ragged_to_lists(starts)[0][1] == [3]
    assert ragged_to_lists(limits)[0][1] == [len(text.encode("utf-8"))]


def test_works_in_tf_function_and_dataset_map(tokenizer):
    texts = tf.constant(["hello world", "unwanted", "cafe!"])
    graph = tf.function(tokenizer.tokenize)(texts)
    mapped = next(iter(tf.data.Dataset.from_tensor_slices(texts).batch(3)
                       .map(tokenizer.tokenize)))
    expected = ragged_to_lists(tokenizer.tokenize(texts))
    assert ragged_to_lists(graph) == expected == ragged_to_lists(mapped)


def test_empty_batch_and_scalar_input(tokenizer):
    empty = tokenizer.tokenize(tf.constant([], tf.string))
    assert empty.shape[0] == 0 and empty.flat_values.shape[0] == 0
    assert ragged_to_lists(tokenizer.tokenize(tf.constant("hello"))) == [[[14]]]


def test_one_megabyte_string(tokenizer):
    text = ("hello world, " * 80_000)[:1_000_000]
    ids = tokenizer.tokenize(tf.constant([text]))
    assert int(ids.row_lengths()[0]) == 3 * (1_000_000 // 13) + 1


@pytest.mark.parametrize("lower_case", [True, False])
def test_ascii_fast_path_equals_the_exact_path(lower_case):
    # Random printable ASCII: letters of both cases, digits, every punctuation mark,
    # runs of spaces, words around the 200-character limit; in mixed batches too.
    rng = np.random.default_rng(7)
    alphabet = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 "
                    "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~     ")
    texts = ["".join(rng.choice(alphabet, size=rng.integers(0, 120))) for _ in range(400)]
    texts += ["x" * 199 + " " + "X" * 200, "y" * 201, "[MASK] [UNK] ##x", "want ed"]
    texts += ["mixed batch: naïve", "\u535A unwanted"]  # non-ASCII rows in the batch
    fast = BertTokenizer(VOCAB, lower_case=lower_case)
    exact = BertTokenizer(VOCAB, lower_case=lower_case, ascii_fast_path=False)
    batch = tf.constant(texts)
    assert ragged_to_lists(fast.tokenize(batch)) == ragged_to_lists(exact.tokenize(batch))
    assert (fast.tokenize_pieces(batch).to_list()
            == exact.tokenize_pieces(batch).to_list())


def test_non_string_input_is_a_clear_error(tokenizer):
    with pytest.raises(TypeError, match="takes a string tensor, got int32"):
        tokenizer.tokenize(tf.constant([1, 2]))


def test_missing_special_token_is_a_clear_error(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(t for t in VOCAB if t != "[MASK]") + "\n")
    with pytest.raises(ValueError, match=r"vocab.txt lacks the special tokens \['\[MASK\]'\]"):
        BertTokenizer(str(path))


def test_special_tokens_dict(tokenizer):
    special = {k: int(v) for k, v in tokenizer.get_special_tokens_dict().items()}
    assert special == {"vocab_size": len(VOCAB), "start_of_sequence_id": 2,
                       "end_of_segment_id": 3, "padding_id": 0, "mask_id": 4}


def test_vocab_file_errors_name_file_and_line(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("[PAD]\nhello\n\nworld\n")
    with pytest.raises(ValueError, match=r"vocab.txt:3: empty vocabulary line"):
        load_vocab(str(path))
    path.write_text("[PAD]\nhello\nworld\nhello\n")
    with pytest.raises(ValueError, match=r"vocab.txt:4: token 'hello' repeats line 2"):
        load_vocab(str(path))
    path.write_text("[PAD]\r\nhello\r\n")
    assert load_vocab(str(path)) == ["[PAD]", "hello"]
    assert vocab_fingerprint(["a", "b"]) != vocab_fingerprint(["b", "a"])


def test_from_model_dir_takes_casing_and_word_length_from_text_config(tmp_path):
    import dataclasses
    import shutil

    from keras_bert_app.text.text_config import TextConfig
    from tests.helpers import SHAKESPEARE_VOCAB

    shutil.copy(SHAKESPEARE_VOCAB, tmp_path / "vocab.txt")
    config = dataclasses.replace(TextConfig.for_vocab(SHAKESPEARE_VOCAB, False),
                                 max_chars_per_word=7)
    config.to_json_file(tmp_path / "text_config.json")
    tokenizer = BertTokenizer.from_model_dir(tmp_path)
    assert (tokenizer.lower_case, tokenizer.max_chars_per_word) == (False, 7)
    # Another vocabulary under the same settings is refused, not tokenized with.
    with open(tmp_path / "vocab.txt", "a", encoding="utf-8") as f:
        f.write("extra\n")
    with pytest.raises(ValueError, match="is not the vocabulary"):
        BertTokenizer.from_model_dir(tmp_path)
    (tmp_path / "text_config.json").unlink()
    with pytest.raises(FileNotFoundError, match="text_config.json is missing"):
        BertTokenizer.from_model_dir(tmp_path)


# Separators (Google's whitespace after cleaning), characters cleaning deletes (U+001C
# and U+0085 are whitespace to str.split() but controls to Google), and others.
_SEPARATORS = " \t\n\r\u00a0\u2003\u2028\u2029\u3000"
_TOKEN_CHARS = _SEPARATORS + "\x1c\x85\x00\x07\u200b\ufffd" + "ab,.中é\u0301"


def test_whitespace_tokens_are_googles_split_of_the_cleaned_text(tokenizer):
    rng = np.random.default_rng(0)
    texts = ["", "  ", "to be  or", "x\x1cy z\u2028w"] + [
        "".join(rng.choice(list(_TOKEN_CHARS), size=rng.integers(1, 12)))
        for _ in range(300)]
    data = tf.constant([t.encode() for t in texts])
    starts, limits = whitespace_token_offsets(data)
    piece_starts = tokenizer.tokenize_with_offsets(data)[1]
    for text, raw, a, b, pieces in zip(texts, data.numpy(), starts.to_list(),
                                       limits.to_list(), piece_starts.to_list()):
        tokens = [raw[i:j].decode() for i, j in zip(a, b)]
        # Deleted characters stay in their token; cleaned, the tokens are Google's.
        cleaned = [BasicTokenizer._clean_text(t) for t in tokens]
        assert [t for t in cleaned if t] == BasicTokenizer._clean_text(text).split(), text
        assert all(t and t[0] not in _SEPARATORS and t[-1] not in _SEPARATORS
                   for t in tokens)
        # Every piece starts inside a token (the NER export reads tags this way).
        for piece_start in (p for word in pieces for p in word):
            assert any(i <= piece_start < j for i, j in zip(a, b)), (text, piece_start)


def test_whitespace_tokens_keep_undecodable_bytes_whole():
    starts, limits = whitespace_token_offsets(tf.constant([b"ab\xff c\xe4", b"\xff"]))
    assert starts.to_list() == [[0, 4], [0]]
    assert limits.to_list() == [[3, 6], [1]]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
