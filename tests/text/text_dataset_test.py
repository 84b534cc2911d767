"""Raw-text batches for fine-tuning: length bucketing keeps a bounded set of shapes
and pads each batch only to its bucket, every example is seen once per epoch, and a
resumed stream continues exactly where the skipped batches end."""

import sys

import numpy as np
import pytest
import tensorflow as tf

from keras_bert_app import names
from keras_bert_app.text.preprocessing_layer import BertTextPreprocessor, padding_lengths
from keras_bert_app.text.text_dataset import is_text_input, text_dataset, token_lengths
from tests.helpers import SHAKESPEARE_VOCAB

# Lengths from 1 to ~60 words: every bucket of 16/32/64 is used.
TEXTS = [" ".join(["to be or not to be"] * (1 + i % 10)) for i in range(60)]


def preprocessor(dynamic_padding=True, sequence_length=64):
    return BertTextPreprocessor(SHAKESPEARE_VOCAB, do_lower_case=True,
                                sequence_length=sequence_length,
                                dynamic_padding=dynamic_padding)


def test_buckets_give_few_shapes_and_pad_each_batch_only_to_its_bucket():
    p = preprocessor()
    labels = np.arange(len(TEXTS))
    dataset = text_dataset(p, TEXTS, labels, batch_size=4, shuffle=True, seed=3,
                           repeat=True, drop_remainder=True, bucket_by_length=True)
    lengths = token_lengths(p, (tf.constant(TEXTS),))
    bounds = np.asarray(padding_lengths(64))
    shapes = set()
    for inputs, ids in dataset.take(60):
        width = inputs[names.INPUT_WORD_IDS].shape[1]
        shapes.add(width)
        buckets = {int(np.searchsorted(bounds, lengths[i])) for i in ids.numpy()}
        assert len(buckets) == 1  # one length bucket per batch
        assert width == bounds[buckets.pop()]
        assert inputs[names.INPUT_WORD_IDS].shape[0] == 4
        mask = inputs[names.INPUT_MASK].numpy()
        np.testing.assert_array_equal(mask.sum(axis=1), lengths[ids.numpy()])
    assert shapes == {16, 32, 64}


def test_without_dynamic_padding_every_batch_is_full_length():
    p = preprocessor(dynamic_padding=False)
    for inputs in text_dataset(p, TEXTS[:8], batch_size=4):
        assert inputs[names.INPUT_WORD_IDS].shape == (4, 64)


def test_one_epoch_in_order_sees_every_example_once():
    p = preprocessor()
    ids = np.concatenate([y.numpy() for _, y in text_dataset(
        p, TEXTS, np.arange(60), batch_size=7)])
    assert ids.tolist() == list(range(60))
    shuffled = np.concatenate([y.numpy() for _, y in text_dataset(
        p, TEXTS, np.arange(60), batch_size=7, shuffle=True, seed=1)])
    assert sorted(shuffled.tolist()) == list(range(60))
    assert shuffled.tolist() != list(range(60))


def test_pad_to_longest_pads_each_batch_to_its_own_longest_row():
    p = preprocessor()
    lengths = token_lengths(p, (tf.constant(TEXTS),))
    widths = set()
    for inputs, ids in text_dataset(p, TEXTS, np.arange(60), batch_size=7,
                                    pad_to_longest=True):
        mask = inputs[names.INPUT_MASK].numpy()
        np.testing.assert_array_equal(mask.sum(axis=1), lengths[ids.numpy()])
        assert inputs[names.INPUT_WORD_IDS].shape[1] == lengths[ids.numpy()].max()
        widths.add(inputs[names.INPUT_WORD_IDS].shape[1])
    assert widths - set(padding_lengths(64))


def test_skipped_batches_resume_the_same_stream():
    p = preprocessor()

    def stream(skip):
        dataset = text_dataset(p, TEXTS, np.arange(60), batch_size=4, shuffle=True,
                               seed=5, repeat=True, drop_remainder=True,
                               bucket_by_length=True, skip_batches=skip)
        return [y.numpy().tolist() for _, y in dataset.take(20 - skip)]

    assert stream(0)[7:] == stream(7)


def test_pairs_and_input_checks():
    p = preprocessor()
    (inputs, y), = list(text_dataset(p, (TEXTS[:3], TEXTS[3:6]), [0, 1, 0], batch_size=3))
    assert inputs[names.INPUT_TYPE_IDS].numpy().max() == 1
    with pytest.raises(ValueError, match="y has 2 rows but the texts have 3"):
        text_dataset(p, TEXTS[:3], [0, 1], batch_size=2)
    with pytest.raises(ValueError, match="bucket_by_length needs repeat"):
        text_dataset(p, TEXTS, bucket_by_length=True)
    with pytest.raises(ValueError, match="empty"):
        text_dataset(p, np.array([], object))
    assert is_text_input(["a"]) and is_text_input((["a"], ["b"]))
    assert is_text_input({names.TEXT_A: np.array(["a"])})
    assert not is_text_input({"input_word_ids": np.zeros([1, 4], "int32")})
    assert not is_text_input(np.zeros([2, 3]))


def test_datasets_of_one_preprocessor_trace_pack_once_per_kind_and_vocabulary():
    p = preprocessor()
    texts = tf.constant(TEXTS[:4])
    # The layer's own (eager) call.
    expected = {k: np.asarray(v) for k, v in p(texts).items()}
    traces = []
    pack = p.pack

    def counted(segments, pad_to_longest=False):
        traces.append((len(segments), pad_to_longest))
        return pack(segments, pad_to_longest=pad_to_longest)

    p.pack = counted
    (labelled, _), = text_dataset(p, TEXTS[:4], np.arange(4), batch_size=4)
    unlabelled, = text_dataset(p, TEXTS[:4], batch_size=4, shuffle=True, seed=2).take(1)
    assert traces == [(1, False)]  # fit's and predict's datasets: one trace
    for inputs in (labelled, unlabelled):
        assert sorted(inputs[names.INPUT_MASK].numpy().sum(1).tolist()) == sorted(
            expected[names.INPUT_MASK].sum(1).tolist())
    for key, value in expected.items():
        np.testing.assert_array_equal(labelled[key].numpy(), value)
    list(text_dataset(p, TEXTS[:4], batch_size=4, pad_to_longest=True))
    list(text_dataset(p, (TEXTS[:4], TEXTS[4:8]), batch_size=4))
    assert traces[1:] == [(1, True), (2, False)]  # another kind: its own trace
    # A new vocabulary is never tokenized with the old one's function.
    p.set_vocabulary(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "to", "be"])
    (inputs, _), = text_dataset(p, ["to be or"], np.arange(1), batch_size=1)
    assert inputs[names.INPUT_WORD_IDS].numpy()[0, :5].tolist() == [2, 5, 6, 1, 3]
    assert traces[-1] == (1, False) and len(traces) == 4


def test_a_savedmodel_holding_the_layer_saves_after_datasets_and_eager_calls(tmp_path):
    # The traced pack functions are no SavedModel children (tracked, their tuple
    # keys made saving fail).
    p = preprocessor()
    list(text_dataset(p, TEXTS[:4], batch_size=4))
    expected = {k: np.asarray(v) for k, v in p(tf.constant(TEXTS[:2])).items()}
    module = tf.Module()
    module.preprocessor = p
    module.serve = tf.function(lambda texts: p.pack([texts]),
                               input_signature=[tf.TensorSpec([None], tf.string)])
    tf.saved_model.save(module, str(tmp_path), signatures={"serving_default": module.serve})
    served = tf.saved_model.load(str(tmp_path)).signatures["serving_default"](
        texts=tf.constant(TEXTS[:2]))
    for key, value in expected.items():
        np.testing.assert_array_equal(served[key].numpy(), value)


def test_the_length_pass_keeps_no_tokenizer_alive():
    import gc
    import weakref

    p = preprocessor()
    assert token_lengths(p, (tf.constant(["the king", "a lord of the night"]),)).tolist() \
        == token_lengths(p, (tf.constant(["the king", "a lord of the night"]),)).tolist()
    tokenizer = weakref.ref(p.tokenizer)
    del p
    gc.collect()
    assert tokenizer() is None  # the length pass kept no reference to it


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
