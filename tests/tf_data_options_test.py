"""Every `tf.data` pipeline the project builds switches tf.data's autotuning model
off (`kba.data.dataset_options`): with it on, destroying an iterator before its end —
`fit(steps_per_epoch=N)`, `evaluate(ds.take(n))` — waits for the model's sleeping
thread, up to a minute (measured in benchmarks/teardown_benchmark.py). These tests
pin the option on each dataset kind, so a new pipeline or a refactor that drops it
fails here rather than as a slow `fit`."""

import sys
import types

import numpy as np
import pytest
import tensorflow as tf

import keras_bert_app as kba
from keras_bert_app import names
from keras_bert_app.data.multiple_choice_data import MultipleChoiceExample
from keras_bert_app.data.ner_features import ner_windows
from keras_bert_app.text.preprocessing_layer import BertTextPreprocessor
from keras_bert_app.text.text_config import TextConfig
from keras_bert_app.text.text_dataset import preprocess_dataset, text_dataset
from keras_bert_app.text.tokenizer import BertTokenizer
from keras_bert_app.tf_data_options import autotune_model_enabled, dataset_options, finish
from keras_bert_app.training import ner_inputs, squad
from keras_bert_app.training.multiple_choice_inputs import MultipleChoiceData
from tests.helpers import SHAKESPEARE_VOCAB, write_shakespeare_corpus

TEXTS = [" ".join(["to be or not to be"] * (1 + i % 6)) for i in range(24)]


def test_tensorflow_default_runs_the_model_and_our_options_switch_it_off():
    plain = tf.data.Dataset.range(8).prefetch(tf.data.AUTOTUNE)
    assert autotune_model_enabled(plain)  # TF's default: the waiting thread exists
    assert dataset_options().autotune.enabled is False
    ours = finish(plain)
    assert not autotune_model_enabled(ours)
    assert [int(x) for x in ours] == list(range(8))  # elements untouched
    # A later transformation keeps the option (options travel down the pipeline).
    assert not autotune_model_enabled(ours.map(lambda x: x + 1).batch(2))


def test_the_public_name_is_the_same_options():
    assert kba.data.dataset_options().autotune.enabled is False


@pytest.fixture(scope="module")
def preprocessor():
    return BertTextPreprocessor(SHAKESPEARE_VOCAB, do_lower_case=True, sequence_length=32)


def test_text_datasets(preprocessor):
    training = text_dataset(preprocessor, TEXTS, np.arange(len(TEXTS)), batch_size=4,
                            shuffle=True, seed=1, repeat=True, drop_remainder=True,
                            bucket_by_length=True)
    evaluation = text_dataset(preprocessor, TEXTS, batch_size=4)
    users = preprocess_dataset(preprocessor, tf.data.Dataset.from_tensor_slices(
        TEXTS).batch(4))
    for dataset in (training, evaluation, users):
        assert not autotune_model_enabled(dataset)
        next(iter(dataset))


def test_pretraining_records_and_raw_text(tmp_path):
    corpus = str(tmp_path / "corpus.txt")
    write_shakespeare_corpus(corpus, num_lines=200, document_lines=20)
    records = str(tmp_path / "train.tfrecord")
    kba.data.create_pretraining_data(kba.data.PretrainingDataConfig(
        input_files=(corpus,), output_files=(records,), vocab_file=SHAKESPEARE_VOCAB,
        max_seq_length=32, max_predictions_per_seq=5, dupe_factor=1), verbose=0)
    for is_training in (True, False):
        dataset = kba.data.pretraining_dataset(records, batch_size=2, max_seq_length=32,
                                               max_predictions_per_seq=5,
                                               is_training=is_training)
        assert not autotune_model_enabled(dataset)
        next(iter(dataset))
    raw = kba.data.raw_text_pretraining_dataset(corpus, SHAKESPEARE_VOCAB, 2,
                                                max_seq_length=32, seed=1,
                                                shuffle_buffer_size=64)
    assert not autotune_model_enabled(raw)
    next(iter(raw))


def test_ner_and_squad_training_datasets():
    tokenizer = BertTokenizer(SHAKESPEARE_VOCAB, lower_case=True)
    sentences = [["Romeo", "speaks", "to", "Juliet"], ["Verona", "sleeps"]] * 4
    tags = [[1, 0, 0, 1], [1, 0]] * 4
    windows = ner_windows(sentences, tokenizer, 16, 8, tag_ids=tags)
    ner = ner_inputs.train_dataset(windows, batch_size=2, seed=1, skip_batches=0,
                                   max_seq_length=16)
    assert not autotune_model_enabled(ner)
    next(iter(ner))

    feature = types.SimpleNamespace(input_word_ids=np.ones(16, np.int32),
                                    input_mask=np.ones(16, np.int32),
                                    input_type_ids=np.zeros(16, np.int32),
                                    start_position=1, end_position=2)
    for labels in (True, False):
        dataset = squad._features_dataset([feature] * 4, batch_size=2, labels=labels)
        assert not autotune_model_enabled(dataset)
        next(iter(dataset))


def test_ner_prediction_feeds_keras_our_dataset_not_arrays():
    # Keras' own pipeline for arrays keeps the model on (and waited after predict).
    tokenizer = BertTokenizer(SHAKESPEARE_VOCAB, lower_case=True)
    windows = ner_windows([["Romeo", "speaks"], ["Verona"]] * 3, tokenizer, 16, 8)
    seen = []

    class Recorder:
        run_eagerly = True  # as a Keras model that runs eagerly: no predict trace

        def predict(self, x, verbose=0, **kwargs):
            seen.append(x)
            rows = sum(int(b[names.INPUT_WORD_IDS].shape[0]) for b in x)
            width = int(x.element_spec[names.INPUT_WORD_IDS].shape[1] or 16)
            return np.zeros([rows, width, 3], np.float32)

    logits = ner_inputs.window_logits(Recorder(), windows, batch_size=2, max_seq_length=16)
    assert logits.shape == (len(windows), 16, 3)
    assert seen and all(isinstance(x, tf.data.Dataset) and not autotune_model_enabled(x)
                        for x in seen)


def test_multiple_choice_training_dataset():
    examples = [MultipleChoiceExample(context="Romeo speaks", question="",
                                      choices=("to Juliet", "to the moon", "softly"),
                                      label=i % 3) for i in range(6)]
    data = MultipleChoiceData(types.SimpleNamespace(max_seq_length=32), examples, [], [])
    data.set_text(SHAKESPEARE_VOCAB, TextConfig.for_vocab(SHAKESPEARE_VOCAB, True), 32)
    dataset = data.train_dataset(batch_size=2, seed=1)
    assert not autotune_model_enabled(dataset)
    inputs, labels = next(iter(dataset))
    assert inputs[names.INPUT_WORD_IDS].shape[:2] == (2, 3)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
