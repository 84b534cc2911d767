"""Tokenization inside `tf.data` gives the ids of a direct call, on batches that mix
ASCII rows (fast path) and non-ASCII rows (exact path); and the exact path's compact
forms of `tf.repeat`, `value_rowids`, `searchsorted` and shifts (fewer ops for
`tf.data` to instantiate per iterator) equal TensorFlow's on edge cases."""

import sys

import numpy as np
import pytest
import tensorflow as tf

from keras_bert_app import names
from keras_bert_app.data import raw_text_pretraining_dataset
from keras_bert_app.text import tokenizer as tokenizer_module
from keras_bert_app.text.preprocessing_layer import BertTextPreprocessor
from keras_bert_app.text.preprocessor import BertPreprocessor
from keras_bert_app.text.text_config import TextConfig
from keras_bert_app.text.text_dataset import preprocess_dataset, text_dataset
from keras_bert_app.text.tokenizer import BertTokenizer
from tests.helpers import SHAKESPEARE_VOCAB, ragged_to_lists

# Batches of 3: all ASCII, mixed (ASCII rows take the fast path, the others the exact
# path), all non-ASCII, and an empty string and control characters.
TEXTS = ["First Citizen: Before we proceed any further, hear me speak.",
         "All: Speak, speak.", "You are all resolved rather to die than to famish?",
         "Ça va? Ünïcödé “quotes” — and a ΣΙΣ.", "MENENIUS: What work's, my countrymen,",
         "中文字符 and ｆｕｌｌ-width",
         "Café crème", "naïve résumé", "ΟΔΥΣΣΕΥΣ",
         "", "ctrl\x07char and\ttabs", "bad \ufffd byte"]


@pytest.fixture(scope="module")
def preprocessor():
    return BertPreprocessor(SHAKESPEARE_VOCAB,
                            TextConfig.for_vocab(SHAKESPEARE_VOCAB, True),
                            default_seq_length=24)


def batches(texts=TEXTS, size=3):
    return tf.data.Dataset.from_tensor_slices(texts).batch(size)


def test_preprocessor_in_tf_data_equals_a_direct_call(preprocessor):
    direct = preprocessor(tf.constant(TEXTS))
    for parallel in (None, 2):
        mapped = list(batches().map(preprocessor, num_parallel_calls=parallel))
        for key, value in direct.items():
            np.testing.assert_array_equal(
                np.concatenate([batch[key].numpy() for batch in mapped]), value.numpy())


def test_tokenize_and_pieces_in_tf_data_equal_direct_calls(preprocessor):
    tokenizer = preprocessor.tokenizer
    words = [row for batch in batches().map(tokenizer.tokenize)
             for row in ragged_to_lists(batch)]
    assert words == ragged_to_lists(tokenizer.tokenize(tf.constant(TEXTS)))
    pieces = [row for batch in batches(size=4).map(tokenizer.tokenize_pieces)
              for row in batch.to_list()]
    assert pieces == tokenizer.tokenize_pieces(tf.constant(TEXTS)).to_list()


def test_fine_tuning_datasets_equal_direct_calls():
    layer = BertTextPreprocessor(SHAKESPEARE_VOCAB, do_lower_case=True,
                                 sequence_length=32, dynamic_padding=False)
    direct = layer(tf.constant(TEXTS))
    from_arrays = list(text_dataset(layer, TEXTS, batch_size=5))
    from_dataset = list(preprocess_dataset(layer, batches()))
    for key, value in direct.items():
        for mapped in (from_arrays, from_dataset):
            np.testing.assert_array_equal(
                np.concatenate([batch[key].numpy() for batch in mapped]), value.numpy())


def test_raw_text_pretraining_sequences_hold_the_direct_call_ids(tmp_path):
    documents = [TEXTS[0:4], TEXTS[4:6], TEXTS[6:9], TEXTS[10:12]]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join("\n".join(d) for d in documents) + "\n", "utf-8")
    dataset = raw_text_pretraining_dataset(
        str(corpus), SHAKESPEARE_VOCAB, 8, max_seq_length=128, max_predictions_per_seq=4,
        short_seq_prob=0.0, sentence_prediction="none", is_training=False, seed=1)
    (features, labels), = list(dataset)
    ids = features[names.INPUT_WORD_IDS].numpy()
    for row, (positions, originals, weights) in enumerate(zip(
            features[names.MASKED_LM_POSITIONS].numpy(),
            labels[names.MASKED_LM_IDS].numpy(), labels[names.MASKED_LM_WEIGHTS].numpy())):
        ids[row, positions[weights > 0]] = originals[weights > 0]  # undo the masking
    lengths = features[names.INPUT_MASK].numpy().sum(axis=1)
    tokenizer = BertTokenizer(SHAKESPEARE_VOCAB, lower_case=True)
    expected = [sum(tokenizer.tokenize_pieces(tf.constant(d)).to_list(), [])
                for d in documents]
    assert [row[1:n - 1].tolist() for row, n in zip(ids, lengths)] == expected


@pytest.mark.parametrize("lengths", [[2, 0, 3, 1], [0, 0], [], [4], [0, 5, 0]])
def test_repeat_range_and_value_rowids_equal_tensorflows(lengths):
    lengths = tf.constant(lengths, tf.int32)
    assert tokenizer_module._repeat_range(lengths).numpy().tolist() == tf.repeat(
        tf.range(tf.size(lengths)), lengths).numpy().tolist()
    ragged = tf.RaggedTensor.from_row_lengths(tf.zeros([tf.reduce_sum(lengths)]),
                                              tf.cast(lengths, tf.int64))
    assert tokenizer_module._value_rowids(ragged).numpy().tolist() == \
        ragged.value_rowids().numpy().tolist()


@pytest.mark.parametrize("side", ["left", "right"])
def test_search_and_shifts_equal_tensorflows(side):
    table = tf.constant([1, 3, 3, 7], tf.int32)
    for values in ([0, 3, 4, 7, 9], []):
        values = tf.constant(values, tf.int32)
        assert tokenizer_module._search(table, values, side).numpy().tolist() == \
            tf.searchsorted(table, values, side=side).numpy().tolist()
    for values in ([5, 6, 7], [5], []):
        assert tokenizer_module._shift_right(tf.constant(values), -1).numpy().tolist() == \
            ([-1] + values)[:len(values)]
        assert tokenizer_module._shift_left(tf.constant(values), -1).numpy().tolist() == \
            (values + [-1])[1:]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
