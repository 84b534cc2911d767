"""pack_inputs: [CLS] A [SEP] B [SEP] …, type ids, mask, truncation strategies."""

import sys

import pytest
import tensorflow as tf

from keras_bert_app import names
from keras_bert_app.text.packing import pack_inputs

CLS, SEP, PAD = 101, 102, 0


def packed(segments, seq_length, **kwargs):
    out = pack_inputs([tf.ragged.constant(s) for s in segments], seq_length, CLS, SEP,
                      PAD, **kwargs)
    return {k: v.numpy().tolist() for k, v in out.items()}


def test_single_segment_is_cls_tokens_sep_then_padding():
    out = packed([[[1, 2, 3]]], 7)
    assert out[names.INPUT_WORD_IDS] == [[CLS, 1, 2, 3, SEP, PAD, PAD]]
    assert out[names.INPUT_MASK] == [[1, 1, 1, 1, 1, 0, 0]]
    assert out[names.INPUT_TYPE_IDS] == [[0] * 7]


def test_three_segments_get_type_ids_0_1_2():
    out = packed([[[1]], [[2, 3]], [[4]]], 9)
    assert out[names.INPUT_WORD_IDS] == [[CLS, 1, SEP, 2, 3, SEP, 4, SEP, PAD]]
    assert out[names.INPUT_TYPE_IDS] == [[0, 0, 0, 1, 1, 1, 2, 2, 0]]
    assert out[names.INPUT_MASK] == [[1] * 8 + [0]]


def test_round_robin_cuts_the_longest_segment_like_googles_truncate_seq_pair():
    a, b = [[1, 2, 3, 4, 5, 6], [7]], [[11, 12], [13, 14, 15, 16, 17, 18]]
    out = packed([a, b], 8)
    assert out[names.INPUT_WORD_IDS] == [[CLS, 1, 2, 3, SEP, 11, 12, SEP],
                                         [CLS, 7, SEP, 13, 14, 15, 16, SEP]]
    # Equal lengths: the first segment keeps the odd token (Google pops from B on ties).
    out = packed([[[1, 2, 3, 4]], [[5, 6, 7, 8]]], 8)
    assert out[names.INPUT_WORD_IDS] == [[CLS, 1, 2, 3, SEP, 5, 6, SEP]]


def test_waterfall_keeps_earlier_segments_whole():
    out = packed([[[1, 2, 3, 4, 5, 6]], [[11, 12]]], 8, truncation="waterfall")
    assert out[names.INPUT_WORD_IDS] == [[CLS, 1, 2, 3, 4, 5, SEP, SEP]]
    assert out[names.INPUT_TYPE_IDS] == [[0, 0, 0, 0, 0, 0, 0, 1]]


def test_word_level_segments_are_flattened():
    segment = tf.ragged.constant([[[1, 2], [3]], [[4]]])  # [batch, words, pieces]
    out = pack_inputs([segment], 6, CLS, SEP)
    assert out[names.INPUT_WORD_IDS].numpy().tolist() == [[CLS, 1, 2, 3, SEP, 0],
                                                          [CLS, 4, SEP, 0, 0, 0]]


def test_graph_and_dataset_use_with_a_tensor_length():
    fn = tf.function(lambda s, n: pack_inputs([s], n, CLS, SEP))
    out = fn(tf.ragged.constant([[1, 2, 3]]), tf.constant(4))
    assert out[names.INPUT_WORD_IDS].numpy().tolist() == [[CLS, 1, 2, SEP]]
    ds = tf.data.Dataset.from_tensor_slices(tf.constant([[1, 2], [3, 4]])).batch(2).map(
        lambda x: pack_inputs([tf.RaggedTensor.from_tensor(x)], 5, CLS, SEP))
    assert next(iter(ds))[names.INPUT_MASK].numpy().tolist() == [[1, 1, 1, 1, 0]] * 2


def test_outputs_are_int32_and_empty_batches_work():
    out = pack_inputs([tf.ragged.constant([[1]], dtype=tf.int64)[:0]], 4, CLS, SEP)
    for value in out.values():
        assert value.dtype == tf.int32 and value.shape == (0, 4)


def test_errors():
    with pytest.raises(ValueError, match="Unknown truncation 'longest_first'"):
        packed([[[1]]], 4, truncation="longest_first")
    with pytest.raises(ValueError, match="seq_length=2 leaves no room for 2 segment"):
        packed([[[1]], [[2]]], 2)
    with pytest.raises(ValueError, match="at least one segment"):
        pack_inputs([], 4, CLS, SEP)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))


def test_single_segment_of_every_length_around_the_limit():
    seq_length = 6
    rows = [list(range(1, n + 1)) for n in range(seq_length + 3)]  # 0..8 pieces
    out = pack_inputs([tf.ragged.constant(rows, dtype=tf.int64)], seq_length, CLS, SEP)
    for row, ids, mask in zip(rows, out[names.INPUT_WORD_IDS].numpy().tolist(),
                              out[names.INPUT_MASK].numpy().tolist()):
        kept = row[:seq_length - 2]
        expected = [CLS] + kept + [SEP]
        assert ids == expected + [PAD] * (seq_length - len(expected)), row
        assert mask == [1] * len(expected) + [0] * (seq_length - len(expected)), row
    assert out[names.INPUT_TYPE_IDS].numpy().tolist() == [[0] * seq_length] * len(rows)
