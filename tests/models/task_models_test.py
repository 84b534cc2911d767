"""Task models: classifier/regressor, span labeler, token tagger, multiple choice."""

import ast
import os
import sys

import keras
import numpy as np
import pytest

import keras_bert_app
from keras_bert_app import names
from keras_bert_app.models import (BertClassifier, BertEncoder, BertMultipleChoice,
                                   BertSpanLabeler, BertTokenClassifier)
from tests.helpers import encoder_batch, np_log_softmax, tiny_config, to_numpy


def make_encoder():
    keras.utils.set_random_seed(2)
    return BertEncoder(tiny_config(hidden_dropout_prob=0.0,
                                   attention_probs_dropout_prob=0.0))


def test_classifier_logits_come_from_the_pooled_output():
    encoder = make_encoder()
    model = BertClassifier(encoder, num_classes=3)
    batch = encoder_batch()
    logits = to_numpy(model(batch))
    pooled = to_numpy(encoder(batch))[names.POOLED_OUTPUT]
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in model.get_layer("logits").weights)
    assert logits.shape == (3, 3) and logits.dtype == np.float32
    np.testing.assert_allclose(logits, pooled @ kernel + bias, atol=1e-5)


def test_classifier_learns_with_default_loss_and_accuracy():
    model = BertClassifier(make_encoder(), num_classes=2)
    model.compile(keras.optimizers.Adam(3e-3))
    batch = encoder_batch(batch=8, seq=8, lengths=[8] * 8, seed=3)
    labels = (batch[names.INPUT_WORD_IDS][:, 1] > 48).astype("int32")
    history = model.fit(batch, labels, epochs=30, verbose=0).history
    assert history["loss"][-1] < 0.3 * history["loss"][0]
    assert history["accuracy"][-1] == 1.0


def test_one_class_is_regression_with_mean_squared_error():
    model = BertClassifier(make_encoder(), num_classes=1)
    model.compile("adam")
    batch = encoder_batch()
    scores = np.array([[0.5], [4.0], [2.5]], "float32")
    prediction = to_numpy(model(batch))
    result = model.evaluate(batch, scores, verbose=0, return_dict=True)
    np.testing.assert_allclose(result["loss"], ((prediction - scores) ** 2).mean(), rtol=1e-5)
    assert "mean_absolute_error" in result


def count_traces(model, step):
    """A list that gets one entry each time `model`'s `step` ("train_step",
    "predict_step") is traced."""
    traces = []
    original = getattr(model, step)

    def counted(data):
        traces.append(data)
        return original(data)

    setattr(model, step, counted)
    return traces


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="tf.data datasets and tf.function traces are TensorFlow's")
def test_predict_traces_once_for_batches_of_every_shape_a_dataset_yields():
    import tensorflow as tf

    model = BertClassifier(make_encoder(), num_classes=2)
    traces = count_traces(model, "predict_step")
    # Dynamically padded batches: lengths 5, 8, 6 and a last, smaller batch.
    batches = [encoder_batch(batch=b, seq=s, lengths=[min(s, 4)] * b, seed=s)
               for b, s in ((4, 5), (4, 8), (3, 6))]
    dataset = tf.data.Dataset.from_tensors(batches[0])
    for batch in batches[1:]:
        dataset = dataset.concatenate(tf.data.Dataset.from_tensors(batch))
    outputs = model.predict(dataset, verbose=0)
    assert len(traces) == 1, "Keras traced its predict function once per new shape"
    np.testing.assert_allclose(
        outputs, np.concatenate([to_numpy(model(b)) for b in batches]), atol=1e-5)
    model.predict(dataset, verbose=0)  # a second prediction reuses the trace
    assert len(traces) == 1


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="tf.data datasets and tf.function traces are TensorFlow's")
def test_datasets_of_several_fixed_lengths_share_one_trace_traced_for_any_length():
    """What NER's prediction does (one dataset per length bucket, each of one fixed
    length): traced for any length first, Keras' per-dataset trace finds it."""
    import tensorflow as tf

    from keras_bert_app.tf_tracing import trace_predict_once

    model = BertClassifier(make_encoder(), num_classes=2)
    traces = count_traces(model, "predict_step")
    datasets = [tf.data.Dataset.from_tensor_slices(
        encoder_batch(batch=3, seq=s, lengths=[min(s, 4)] * 3, seed=s)).batch(2)
        for s in (5, 8, 16)]
    trace_predict_once(model, datasets[0], any_length=True)
    assert len(traces) == 1
    for dataset in datasets:
        outputs = model.predict(dataset, verbose=0)
        expected = np.concatenate([to_numpy(model(b)) for b in dataset])
        np.testing.assert_allclose(outputs, expected, atol=1e-5)
    assert len(traces) == 1, "a dataset of another fixed length traced again"


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="tf.function traces are TensorFlow's")
def test_fit_traces_the_train_step_once_where_keras_alone_traces_it_twice():
    batch = encoder_batch(batch=4, seq=6, seed=4)
    labels = np.array([0, 1, 0, 1], "int32")
    # Keras alone builds the optimizer inside the first trace; TensorFlow then traces
    # again without creating variables (what `build_optimizer_before_fit` avoids).
    inputs = {k: keras.Input((6,), dtype="int32", name=k) for k in batch}
    plain = keras.Model(inputs, keras.layers.Dense(2)(keras.ops.cast(
        inputs[names.INPUT_WORD_IDS], "float32")))
    plain.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    plain_traces = count_traces(plain, "train_step")
    plain.fit(batch, labels, epochs=2, verbose=0)
    assert len(plain_traces) == 2
    model = BertClassifier(make_encoder(), num_classes=2)
    model.compile(keras.optimizers.Adam(1e-3))
    traces = count_traces(model, "train_step")
    history = model.fit(batch, labels, batch_size=2, epochs=2, verbose=0).history
    assert len(traces) == 1 and model.optimizer.built
    assert np.isfinite(history["loss"]).all()
    # As Keras: a frozen model leaves its optimizer unbuilt (nothing to update).
    frozen = BertClassifier(make_encoder(), num_classes=2)
    frozen.trainable = False
    frozen.compile(keras.optimizers.Adam(1e-3))
    frozen.fit(batch, labels, batch_size=2, verbose=0)
    assert not frozen.optimizer.built


@pytest.mark.parametrize("num_classes", [0, -1, 2.5, True])
def test_classifier_rejects_a_bad_class_count(num_classes):
    with pytest.raises(ValueError, match="num_classes"):
        BertClassifier(make_encoder(), num_classes=num_classes)


def test_task_models_need_a_bert_encoder():
    with pytest.raises(TypeError, match="BertClassifier needs a BertEncoder"):
        BertClassifier(keras.layers.Dense(3), num_classes=2)


def test_span_labeler_loss_is_the_mean_of_start_and_end_cross_entropy():
    model = BertSpanLabeler(make_encoder())
    model.compile("adam")
    batch = encoder_batch(batch=3, seq=10)
    out = to_numpy(model(batch))
    assert out[names.START_LOGITS].shape == (3, 10) == out[names.END_LOGITS].shape
    starts, ends = np.array([1, 0, 4]), np.array([3, 0, 6])
    expected = 0.5 * (
        -np_log_softmax(out[names.START_LOGITS])[np.arange(3), starts].mean()
        - np_log_softmax(out[names.END_LOGITS])[np.arange(3), ends].mean())
    result = model.evaluate(batch, {names.START_LOGITS: starts, names.END_LOGITS: ends},
                            verbose=0, return_dict=True)
    np.testing.assert_allclose(result["loss"], expected, rtol=1e-5)


def test_token_classifier_ignores_unlabelled_positions():
    model = BertTokenClassifier(make_encoder(), num_classes=5)
    model.compile("adam")
    batch = encoder_batch(batch=2, seq=6, lengths=[6, 4])
    logits = to_numpy(model(batch))
    assert logits.shape == (2, 6, 5)
    ignore = names.IGNORE_LABEL_ID
    labels = np.array([[ignore, 1, 2, ignore, 4, ignore],
                       [ignore, 3, 0, ignore, ignore, ignore]], "int32")
    keep = labels != ignore
    log_probs = np_log_softmax(logits)
    ce = -np.take_along_axis(log_probs, np.where(keep, labels, 0)[..., None], -1)[..., 0]
    result = model.evaluate(batch, labels, verbose=0, return_dict=True)
    np.testing.assert_allclose(result["loss"], ce[keep].mean(), rtol=1e-5)


def test_multiple_choice_scores_each_choice_with_the_shared_encoder():
    encoder = make_encoder()
    model = BertMultipleChoice(encoder)
    for num_choices in (2, 4):
        flat = encoder_batch(batch=3 * num_choices, seq=7,
                             lengths=[7 - i % 3 for i in range(3 * num_choices)])
        choices = {k: v.reshape(3, num_choices, 7) for k, v in flat.items()}
        logits = to_numpy(model(choices))
        assert logits.shape == (3, num_choices)
        pooled = to_numpy(encoder(flat))[names.POOLED_OUTPUT]
        kernel, bias = (keras.ops.convert_to_numpy(w)
                        for w in model.get_layer("choice_score").weights)
        np.testing.assert_allclose(logits, (pooled @ kernel + bias).reshape(3, num_choices),
                                   atol=1e-5)


def test_multiple_choice_trains():
    model = BertMultipleChoice(make_encoder())
    model.compile(keras.optimizers.Adam(3e-3))
    flat = encoder_batch(batch=12, seq=6, lengths=[6] * 12, seed=9)
    choices = {k: v.reshape(4, 3, 6) for k, v in flat.items()}
    history = model.fit(choices, np.array([0, 2, 1, 2]), epochs=30, verbose=0).history
    assert history["loss"][-1] < 0.5 * history["loss"][0]


def test_models_and_layers_are_backend_agnostic():
    # DESIGN.md: layers/ and models/ use keras.ops only; TensorFlow-only code (e.g. the
    # tf.distribute workarounds of keras_bert_app.training) lives elsewhere.
    package = os.path.dirname(keras_bert_app.__file__)
    offenders = []
    for folder in ("layers", "models"):
        for file_name in sorted(os.listdir(os.path.join(package, folder))):
            if not file_name.endswith(".py"):
                continue
            path = os.path.join(package, folder, file_name)
            with open(path, encoding="utf-8") as f:
                tree = ast.parse(f.read(), path)
            for node in ast.walk(tree):
                modules = ([a.name for a in node.names] if isinstance(node, ast.Import)
                           else [node.module or ""] if isinstance(node, ast.ImportFrom)
                           else [])
                offenders += [f"{folder}/{file_name}:{node.lineno} imports {m}"
                              for m in modules if m.split(".")[0] == "tensorflow"]
    assert not offenders


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
