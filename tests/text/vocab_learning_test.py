"""Vocabulary learning: special tokens first, then [unusedN] slots, the size asked for
as a bound that is reached, usable by the tokenizer."""

import os
import subprocess
import sys

import pytest
import tensorflow as tf

from keras_bert_app import names
from keras_bert_app.text.text_config import TextConfig
from keras_bert_app.text.tokenizer import BertTokenizer
from keras_bert_app.text.vocab import load_vocab
from keras_bert_app.text.vocab_learning import count_words, learn_vocab_from_counts
from tests.helpers import ragged_to_lists, require_shared_data
from tests.text import reference_tokenizer as ref


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    data = require_shared_data()
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    with open(os.path.join(data, "corpus", "tinyshakespeare.txt"), encoding="utf-8") as f:
        shakespeare = f.read()[:150_000]
    with open(os.path.join(data, "corpus", "bert_sample_text.txt"), encoding="utf-8") as f:
        sample = f.read()
    path.write_text(sample + "\n" + shakespeare, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def corpus_counts(corpus):
    return count_words([str(corpus)], lower_case=True)


@pytest.fixture(scope="module")
def shakespeare_counts():
    data = require_shared_data()
    return count_words([os.path.join(data, "corpus", "tinyshakespeare.txt")], lower_case=True)


def unused(n):
    return [f"[unused{i}]" for i in range(n)]


def alphabet_of(counts):
    """Every character of the words, alone and as a `##` continuation."""
    chars = {c for word in counts for c in word}
    return chars | {"##" + c for c in chars}


@pytest.mark.parametrize("lower_case,num_unused", [(True, 0), (False, 7)])
def test_build_vocab_pipeline(tmp_path, corpus, lower_case, num_unused):
    output = tmp_path / "vocab.txt"
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.build_vocab", f"--input_file={corpus}",
         "--vocab_size=600", f"--num_unused={num_unused}",
         f"--do_lower_case={str(lower_case).lower()}", f"--output_file={output}"],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    tokens = load_vocab(str(output))
    assert tokens[:5] == list(names.SPECIAL_TOKENS)
    assert tokens[5:5 + num_unused] == unused(num_unused)
    assert len(tokens) == 600  # the corpus has more than 600 pieces to offer
    assert f"Wrote {len(tokens)} tokens to {output}" in result.stdout
    assert len(set(tokens)) == len(tokens)
    config = TextConfig.from_json_file(tmp_path / names.TEXT_CONFIG_FILE)
    assert config.do_lower_case is lower_case
    config.check_vocab(str(output))

    # The learned vocabulary covers the corpus: no [UNK], and the in-graph tokenizer
    # agrees with the reference on it, casing included.
    lines = [l for l in corpus.read_text(encoding="utf-8").splitlines() if l.strip()][:2000]
    tokenizer = BertTokenizer(str(output), lower_case=lower_case)
    reference = ref.FullTokenizer(str(output), do_lower_case=lower_case)
    ids = ragged_to_lists(tokenizer.tokenize(tf.constant(lines)))
    unk = tokenizer.special_ids[names.UNK_TOKEN]
    assert all(unk not in word for row in ids for word in row)
    for line, row in zip(lines, ids):
        assert [[tokens[i] for i in w] for w in row] == reference.tokenize_words(line)
    # Cased vocabularies keep capitals.
    assert any(t[0].isupper() for t in tokens[5:]) is (not lower_case)


def test_vocab_size_is_a_bound_never_exceeded(corpus_counts):
    alphabet = alphabet_of(corpus_counts)
    smallest = len(names.SPECIAL_TOKENS) + len(alphabet)
    for vocab_size in (smallest, smallest + 1, 1500):
        tokens = learn_vocab_from_counts(corpus_counts, vocab_size)
        assert len(tokens) <= vocab_size, vocab_size
        assert len(tokens) >= 0.98 * vocab_size, (vocab_size, len(tokens))
        assert len(set(tokens)) == len(tokens)
        assert tokens[:5] == list(names.SPECIAL_TOKENS)
        # Every character and its ## form survive, whatever the size: no [UNK] for
        # a character the corpus has.
        assert alphabet <= set(tokens), vocab_size


def test_a_corpus_with_fewer_pieces_gives_them_all(corpus_counts):
    everything = learn_vocab_from_counts(corpus_counts, 100_000)
    assert len(everything) < 100_000
    assert learn_vocab_from_counts(corpus_counts, len(everything)) == everything
    assert len(learn_vocab_from_counts(corpus_counts, len(everything) - 1)) == \
        len(everything) - 1


@pytest.mark.parametrize("vocab_size", [8000, 2000])
def test_tinyshakespeare_reaches_the_size(shakespeare_counts, vocab_size):
    # The learner alone gave 11,521 tokens for 8000 (its search overshoots).
    tokens = learn_vocab_from_counts(shakespeare_counts, vocab_size)
    assert 0.98 * vocab_size <= len(tokens) <= vocab_size
    assert len(tokens) == vocab_size  # exact when the corpus has more pieces
    assert alphabet_of(shakespeare_counts) <= set(tokens)


def test_unused_slots_follow_the_special_tokens_inside_the_size(corpus_counts):
    counts = dict(corpus_counts, **{"[": 3, "]": 3})  # brackets, to see them below
    tokens = learn_vocab_from_counts(counts, 400, num_unused=10)
    assert len(tokens) == 400
    assert tokens[:15] == list(names.SPECIAL_TOKENS) + unused(10)
    assert [t for t in tokens if t.startswith("[unused")] == unused(10)
    # The slots take their room from the learned pieces, which are otherwise the same.
    assert tokens[15:] == learn_vocab_from_counts(counts, 390)[5:]

    # Text never produces a slot's id: "[unused0]" typed in text is punctuation and
    # letters, as "[MASK]" is (ASCII fast path and exact path alike).
    lines = ["[unused0] and [unused9]!", "café [unused3] [MASK]"]
    for lower_case in (True, False):
        tokenizer = BertTokenizer(tokens, lower_case=lower_case)
        ids = ragged_to_lists(tokenizer.tokenize(tf.constant(lines)))
        pieces = [[tokens[i] for i in word] for row in ids for word in row]
        assert not any(5 <= i < 15 for row in ids for word in row for i in word)
        assert [w for w in pieces if w[0] in "[]"] == [["["], ["]"]] * 4


def test_sizes_that_cannot_hold_the_alphabet_are_errors(corpus_counts):
    smallest = len(names.SPECIAL_TOKENS) + len(alphabet_of(corpus_counts))
    with pytest.raises(ValueError, match=f"vocab_size={smallest - 1} .* at least {smallest}"):
        learn_vocab_from_counts(corpus_counts, smallest - 1)
    with pytest.raises(ValueError, match=f"at least {smallest + 3}"):
        learn_vocab_from_counts(corpus_counts, smallest, num_unused=3)
    with pytest.raises(ValueError, match="num_unused=-1"):
        learn_vocab_from_counts(corpus_counts, 1000, num_unused=-1)


def test_text_config_catches_another_vocabulary(tmp_path):
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("\n".join(names.SPECIAL_TOKENS + ("hello",)) + "\n")
    second.write_text("\n".join(names.SPECIAL_TOKENS + ("world",)) + "\n")
    config = TextConfig.for_vocab(str(first), do_lower_case=True)
    config.check_vocab(str(first))
    with pytest.raises(ValueError, match="is not the vocabulary these text settings"):
        config.check_vocab(str(second))


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
