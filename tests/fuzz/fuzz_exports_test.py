"""Fuzzing every text-in serving signature (classifier single and pair, SQuAD, NER,
embedder) with hostile text (tests/fuzz/strategies.py).

Each export is built once from a tiny random model (tests/fuzz/targets.py) and loaded
with `tf.saved_model.load`; the TF-only serving process is checked by
tests/export/*_savedmodel_test.py. Whatever the bytes, every request answers, with
the shapes of saved_models/README.md and the invariants of `Target.check`: answers
are exact substrings at their character offsets, probabilities sum to 1, embeddings
have unit norm, tags are in the label set.
"""

import sys

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_bert_app import names
from tests.fuzz import strategies as fz
from tests.fuzz.targets import NER_LABELS, load_targets

FUZZ = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SINGLE = ["classifier", "ner", "embedder"]
PAIRS = ["classifier_pair", "squad"]
MEGABYTE_TEXTS = [b"word " * 200_000, ("中文 \xe9t\xe9 " * 80_000).encode()[:1_000_000]]


@pytest.fixture(scope="module")
def targets():
    return load_targets(SINGLE + PAIRS)


def pair_batches():
    """Two batches of the same size: (text_a, text_b) or (question, context)."""
    return st.integers(0, 5).flatmap(lambda n: st.tuples(
        st.lists(fz.byte_texts(6), min_size=n, max_size=n),
        st.lists(fz.byte_texts(16), min_size=n, max_size=n)))


@pytest.mark.parametrize("name", SINGLE)
def test_any_bytes_get_a_well_formed_answer(targets, name):
    @FUZZ
    @given(texts=fz.batches())
    def fuzz(texts):
        targets[name].run(texts)

    fuzz()


@pytest.mark.parametrize("name", PAIRS)
def test_any_pair_of_byte_strings_gets_a_well_formed_answer(targets, name):
    @FUZZ
    @given(pair=pair_batches())
    def fuzz(pair):
        targets[name].run(*pair)

    fuzz()


@pytest.mark.parametrize("name", ["classifier", "embedder"])
def test_each_row_is_answered_as_if_it_were_alone(targets, name):
    target = targets[name]

    @settings(FUZZ, max_examples=15)
    @given(texts=fz.batches(max_size=4).filter(lambda t: len(t) > 1))
    def fuzz(texts):
        together = target.call(target.inputs(texts))
        key = names.EMBEDDING if name == "embedder" else names.PROBABILITIES
        for row, text in enumerate(texts):
            alone = target.call(target.inputs([text]))
            np.testing.assert_allclose(together[key][row], alone[key][0], atol=1e-5)

    fuzz()


@pytest.mark.parametrize("batch", [0, 1, 1000])
@pytest.mark.parametrize("name", SINGLE + PAIRS)
def test_batches_of_0_1_and_1000_texts(targets, name, batch):
    texts = [f"Romeo {i} met Juliet in Verona \u200b\xe9 中".encode() for i in range(batch)]
    texts[1::3] = [b"caf\xc3 \xff\xfe"] * len(texts[1::3])
    texts[2::5] = [b""] * len(texts[2::5])
    targets[name].run(texts)


@pytest.mark.parametrize("index", range(len(MEGABYTE_TEXTS)))
@pytest.mark.parametrize("name", SINGLE + PAIRS)
def test_megabyte_texts_are_answered(targets, name, index):
    targets[name].run([MEGABYTE_TEXTS[index], b"short"])


@pytest.mark.parametrize("name,message", [
    ("classifier_pair", "text_a and text_b must have the same number of rows"),
    ("squad", "question and context must have the same number of rows")])
def test_pairs_of_different_batch_sizes_are_an_invalid_argument(targets, name, message):
    target = targets[name]
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        target.call(target.inputs([b"a", b"b"], [b"c", b"d", b"e"]))


def test_ner_words_are_the_whitespace_tokens_of_the_text(targets):
    """saved_models/README.md: the words are the text's whitespace-separated tokens
    (those holding a piece), each word exactly as it is in the text."""
    target = targets["ner"]

    @FUZZ
    @given(texts=fz.batches(max_size=3).map(
        lambda batch: [t for t in batch if fz.as_text(t) is not None]))
    def fuzz(texts):
        inputs = target.inputs(texts)
        fz.check_ner(target.call(inputs), texts, NER_LABELS, exact_words=True)

    fuzz()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
