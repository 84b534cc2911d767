"""BertPreprocessor: eager calls run the traced graph and give what the graph gives."""

import sys

import pytest
import tensorflow as tf

from keras_bert_app import names
from keras_bert_app.text.preprocessor import BertPreprocessor
from keras_bert_app.text.text_config import TextConfig
from tests.helpers import SHAKESPEARE_VOCAB, ragged_to_lists

# ASCII rows take the fast path, the others the exact code-point path: both in one batch.
TEXTS = ["First Citizen: Before we proceed any further, hear me speak.",
         "Ça va? Ünïcödé “quotes” — and a ΣΙΣ.",
         "",
         "KING RICHARD III: Now is the winter of our discontent " * 4]


@pytest.fixture(scope="module")
def preprocessor():
    return BertPreprocessor(SHAKESPEARE_VOCAB,
                            TextConfig.for_vocab(SHAKESPEARE_VOCAB, True),
                            default_seq_length=16)


def as_lists(outputs):
    return {key: value.numpy().tolist() for key, value in outputs.items()}


def test_eager_call_equals_the_graph(preprocessor):
    graph = tf.function(lambda text: preprocessor(text), autograph=False)
    eager = as_lists(preprocessor(tf.constant(TEXTS)))
    assert eager == as_lists(graph(tf.constant(TEXTS)))
    assert set(eager) == {names.INPUT_WORD_IDS, names.INPUT_MASK, names.INPUT_TYPE_IDS}
    lengths = preprocessor.tokenizer.tokenize_pieces(tf.constant(TEXTS)).row_lengths()
    assert [sum(row) for row in eager[names.INPUT_MASK]] == [
        min(int(n) + 2, 16) for n in lengths]
    assert [sum(row) for row in eager[names.INPUT_MASK]][2:] == [2, 16]


def test_eager_tokenize_equals_the_graph(preprocessor):
    graph = tf.function(lambda text: preprocessor.tokenize(text), autograph=False)
    eager = preprocessor.tokenize(tf.constant(TEXTS))
    assert ragged_to_lists(eager) == ragged_to_lists(graph(tf.constant(TEXTS)))
    assert ragged_to_lists(eager) == ragged_to_lists(
        preprocessor.tokenizer.tokenize(tf.constant(TEXTS)))


def test_eager_calls_take_lists_scalars_and_empty_batches(preprocessor):
    from_list = as_lists(preprocessor(TEXTS[:2]))
    assert from_list == as_lists(preprocessor(tf.constant(TEXTS[:2])))
    assert as_lists(preprocessor(TEXTS[0])) == {k: v[:1] for k, v in from_list.items()}
    empty = preprocessor(tf.constant([], tf.string))
    assert empty[names.INPUT_WORD_IDS].shape == (0, 16)


def test_dataset_map_uses_the_graph_path(preprocessor):
    dataset = tf.data.Dataset.from_tensor_slices(TEXTS).batch(4).map(preprocessor)
    assert as_lists(next(iter(dataset))) == as_lists(preprocessor(tf.constant(TEXTS)))


def test_wrong_dtype_is_a_clear_error(preprocessor):
    with pytest.raises(TypeError, match="takes a string tensor, got int32"):
        preprocessor(tf.constant([1, 2]))


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
