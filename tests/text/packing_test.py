"""pack_inputs: [CLS] A [SEP] B [SEP] …, type ids, mask, truncation strategies."""

import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text as tf_text

from keras_bert_app import names
from keras_bert_app.text.packing import (pack_inputs, pair_keep_lengths,
                                         round_robin_keep_lengths)

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


def test_round_robin_deals_one_token_per_segment_in_turn():
    lengths = [tf.constant([3, 0, 1, 5], tf.int64), tf.constant([4, 2, 0, 5], tf.int64),
               tf.constant([2, 1, 0, 5], tf.int64)]
    keep = [k.numpy().tolist() for k in round_robin_keep_lengths(lengths, 5)]
    # Row 0: tf-text's docstring example [3, 4, 2] -> [2, 2, 1]; row 1: the empty first
    # segment is skipped; row 2: everything fits; row 3: the first two get the odd tokens.
    assert [list(row) for row in zip(*keep)] == [[2, 2, 1], [0, 2, 1], [1, 0, 0], [2, 2, 1]]
    keep = [k.numpy().tolist() for k in round_robin_keep_lengths(lengths, 2)]
    assert [list(row) for row in zip(*keep)] == [[1, 1, 0], [0, 1, 1], [1, 0, 0], [1, 1, 0]]


def test_round_robin_matches_tensorflow_text_round_robin_trimmer():
    # Our closed form replaces tf-text's trimmer (its op is missing from the tf-text
    # that TF Serving 2.19 links); it must cut exactly where the trimmer cuts: random
    # lengths with empty segments, budgets of 0, below the segment count, negative, and
    # above the total.
    rng = np.random.default_rng(7)
    for _ in range(150):
        count, batch = int(rng.integers(2, 6)), int(rng.integers(1, 5))
        lengths = rng.integers(0, 7, size=(count, batch))
        budget = int(rng.integers(-2, 5 * count))
        segments = [tf.RaggedTensor.from_row_lengths(tf.range(int(l.sum())), l)
                    for l in lengths]
        expected = [s.row_lengths().numpy().tolist() for s in
                    tf_text.RoundRobinTrimmer(max_seq_length=budget).trim(segments)]
        ours = round_robin_keep_lengths([tf.constant(l, tf.int64) for l in lengths],
                                        tf.constant(budget, tf.int64))
        assert [k.numpy().tolist() for k in ours] == expected, (lengths.tolist(), budget)
        if count == 2 and budget >= 0:
            pair = pair_keep_lengths(*map(tf.constant, lengths), budget)
            assert [k.numpy().tolist() for k in pair] == expected


def test_many_segments_pack_what_the_round_robin_trimmer_keeps():
    rng = np.random.default_rng(3)
    for count in (3, 4):
        rows = [[list(rng.integers(1, 99, size=rng.integers(0, 8))) for _ in range(4)]
                for _ in range(count)]
        seq_length = 12
        out = packed(rows, seq_length)
        trimmed = tf_text.RoundRobinTrimmer(max_seq_length=seq_length - count - 1).trim(
            [tf.ragged.constant(r, dtype=tf.int64, ragged_rank=1) for r in rows])
        for i, ids in enumerate(out[names.INPUT_WORD_IDS]):
            expected = [CLS]
            for segment in trimmed:
                expected += segment[i].numpy().tolist() + [SEP]
            assert ids == expected + [PAD] * (seq_length - len(expected))


def test_packing_graph_uses_no_tf_text_op_missing_from_tf_serving_2_19():
    spec = tf.RaggedTensorSpec([None, None], tf.int32, row_splits_dtype=tf.int64)
    missing = {"TFText>RoundRobinTrim", "TFText>RoundRobinGenerateMasks"}

    def op_types(fn):
        graph = tf.function(fn).get_concrete_function(spec, spec, spec).graph
        graph = graph.as_graph_def()
        return {n.op for n in graph.node} | {
            n.op for f in graph.library.function for n in f.node_def}

    # The same probe finds the op when tf-text's trimmer is used.
    assert op_types(lambda *s: tf_text.RoundRobinTrimmer(9).trim(list(s))) & missing
    for truncation in ("round_robin", "waterfall"):
        assert not op_types(lambda *s: pack_inputs(list(s), 16, CLS, SEP,
                                                   truncation=truncation)) & missing

if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
