"""BertTextPreprocessor: the Keras preprocessing layer packs exactly what the
preprocessing module packs, pads dynamically to a few bucket lengths, runs inside
tf.data, and survives `.keras` saving with its vocabulary."""

import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_bert_app import names
from keras_bert_app.text.preprocessing_layer import BertTextPreprocessor, padding_lengths
from keras_bert_app.text.preprocessor import BertPreprocessor
from keras_bert_app.text.text_config import TextConfig
from tests.helpers import SHAKESPEARE_VOCAB

TEXTS = ["First Citizen: Before we proceed any further, hear me speak.",
         "Ça va? Ünïcödé “quotes” — and a ΣΙΣ.",
         "",
         "KING RICHARD III: Now is the winter of our discontent " * 8]
SECOND = ["All: Speak, speak.", "", "You are all resolved rather to die than to famish?",
          "Resolved. resolved."]


def layer(**kwargs):
    return BertTextPreprocessor(SHAKESPEARE_VOCAB, do_lower_case=True, **kwargs)


def module(seq_length):
    return BertPreprocessor(SHAKESPEARE_VOCAB, TextConfig.for_vocab(SHAKESPEARE_VOCAB, True),
                            default_seq_length=seq_length)


def as_numpy(inputs):
    return {k: keras.ops.convert_to_numpy(v) for k, v in inputs.items()}


def test_single_texts_pack_like_the_preprocessing_module():
    expected = module(48)(tf.constant(TEXTS))
    got = as_numpy(layer(sequence_length=48)(TEXTS))
    for key in names.ENCODER_INPUTS:
        np.testing.assert_array_equal(got[key], expected[key].numpy())


def test_pairs_pack_like_the_preprocessing_module_in_every_input_form():
    m = module(40)
    tokens = [m.tokenize(tf.constant(TEXTS)), m.tokenize(tf.constant(SECOND))]
    expected = {k: v.numpy() for k, v in m.bert_pack_inputs(tokens, 40).items()}
    p = layer(sequence_length=40)
    for x in ((TEXTS, SECOND), {names.TEXT_A: TEXTS, names.TEXT_B: SECOND},
              (np.array(TEXTS, object), tf.constant(SECOND))):
        got = as_numpy(p(x))
        for key in names.ENCODER_INPUTS:
            np.testing.assert_array_equal(got[key], expected[key])
    assert expected[names.INPUT_TYPE_IDS][0].max() == 1  # text_b is segment 1


def test_dynamic_padding_pads_to_the_first_bucket_that_holds_the_batch():
    assert padding_lengths(128) == (16, 32, 64, 128)
    assert padding_lengths(100) == (16, 32, 64, 100)
    full = as_numpy(layer(sequence_length=128)(TEXTS[:3]))
    short = as_numpy(layer(sequence_length=128, dynamic_padding=True)(TEXTS[:3]))
    longest = int(full[names.INPUT_MASK].sum(axis=1).max())
    assert 16 < longest <= 32
    assert short[names.INPUT_WORD_IDS].shape == (3, 32)
    for key in names.ENCODER_INPUTS:  # the same tokens, less padding
        np.testing.assert_array_equal(short[key], full[key][:, :32])
        assert not full[key][:, 32:].any()
    # A batch longer than the sequence length is truncated and padded to it exactly.
    capped = as_numpy(layer(sequence_length=100, dynamic_padding=True)(TEXTS))
    assert capped[names.INPUT_WORD_IDS].shape == (4, 100)


def test_runs_inside_tf_data_with_labels():
    p = layer(sequence_length=24)
    dataset = tf.data.Dataset.from_tensor_slices((TEXTS, [0, 1, 0, 1])).batch(2).map(p)
    (inputs, labels), = list(dataset.take(1))
    assert isinstance(inputs[names.INPUT_WORD_IDS], tf.Tensor)
    assert inputs[names.INPUT_WORD_IDS].shape == (2, 24)
    assert labels.numpy().tolist() == [0, 1]


def test_one_layer_packs_single_texts_then_pairs_eagerly():
    # Each eager call traces for its number of segments (the other order worked
    # already; this one failed inside TensorFlow's retracing).
    layer = BertTextPreprocessor(SHAKESPEARE_VOCAB, sequence_length=16,
                                 dynamic_padding=False)
    single = layer(["a b"])
    pair = layer((["a"], ["b"]))
    assert single[names.INPUT_WORD_IDS].shape == pair[names.INPUT_WORD_IDS].shape == (1, 16)
    assert keras.ops.convert_to_numpy(pair[names.INPUT_TYPE_IDS]).max() == 1


def test_eager_calls_of_any_batch_size_share_one_trace():
    layer = BertTextPreprocessor(SHAKESPEARE_VOCAB, sequence_length=16)
    traced = []
    pack = layer.pack

    def counted(segments, pad_to_longest=False):  # Python runs only while tracing
        traced.append(len(segments))
        return pack(segments, pad_to_longest=pad_to_longest)

    layer.pack = counted
    for texts in (["a b"], ["a", "b c", "d"], ["the king"] * 5):
        out = layer(texts)
        assert keras.ops.convert_to_numpy(out[names.INPUT_WORD_IDS]).shape[0] == len(texts)
    layer((["a"], ["b"]))
    layer((["a", "c"], ["b", "d"]))
    assert traced == [1, 2]


def test_eager_outputs_are_tensors_of_the_current_backend():
    out = layer(sequence_length=16)(["to be or not to be"])
    ids = out[names.INPUT_WORD_IDS]
    assert keras.ops.is_tensor(ids)
    assert keras.ops.convert_to_numpy(ids).dtype == np.int32


def test_bad_inputs_are_named():
    p = layer(sequence_length=16)
    with pytest.raises(ValueError, match="text_a has 2 rows but text_b has 1"):
        p((["a", "b"], ["c"]))
    with pytest.raises(TypeError, match="must be strings"):
        p(np.array([1, 2]))
    with pytest.raises(ValueError, match="keyed"):
        p({"sentence": ["a"]})
    with pytest.raises(ValueError, match="sequence_length"):
        layer(sequence_length=2)


def test_keras_file_round_trip_keeps_vocabulary_and_settings(tmp_path):
    inputs = keras.Input(shape=(), dtype="string")
    p = layer(sequence_length=20, truncation="waterfall", dynamic_padding=True)
    config = p.get_config()
    assert "vocabulary" not in config  # an asset, not 927 tokens of JSON
    restored = BertTextPreprocessor.from_config(config)
    assert restored.tokenizer is None
    directory = tmp_path / "assets"
    directory.mkdir()
    p.save_assets(str(directory))
    restored.load_assets(str(directory))
    assert restored.vocabulary == p.vocabulary
    assert (restored.truncation, restored.dynamic_padding) == ("waterfall", True)
    for key in names.ENCODER_INPUTS:
        np.testing.assert_array_equal(as_numpy(restored(TEXTS))[key],
                                      as_numpy(p(TEXTS))[key])
    del inputs


def test_from_model_dir_checks_the_sequence_length(tmp_path):
    from keras_bert_app.model_dir import save_model_dir
    from keras_bert_app.models import BertEncoder, BertPretrainer
    from tests.helpers import tiny_config

    pretrainer = BertPretrainer(BertEncoder(tiny_config(vocab_size=927,
                                                        max_position_embeddings=32)))
    save_model_dir(tmp_path, pretrainer, SHAKESPEARE_VOCAB,
                   TextConfig.for_vocab(SHAKESPEARE_VOCAB, True))
    p = BertTextPreprocessor.from_model_dir(tmp_path, sequence_length=32)
    assert p.do_lower_case and p.sequence_length == 32
    with pytest.raises(ValueError, match="64"):
        BertTextPreprocessor.from_model_dir(tmp_path, sequence_length=64)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
