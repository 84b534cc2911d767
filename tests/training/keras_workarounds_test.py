"""`prepare_for_distribution`: the workarounds for Keras' TensorFlow trainer under
`tf.distribute`, and pins of the private Keras behaviour they rely on. When a Keras
upgrade changes that behaviour (or fixes the bug a workaround is for), a test here
fails and says which."""

import inspect
import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_bert_app import names
from keras_bert_app.models import BertEncoder, BertPretrainer
from keras_bert_app.training import Distribution, prepare_for_distribution
from keras_bert_app.training.compilation import TraceCounter
from keras_bert_app.training.keras_workarounds import (END_OF_DATA_WARNING,
                                                       build_before_fit,
                                                       evaluate_to_the_end)
from tests.helpers import TINY_VOCAB, encoder_batch, tiny_config

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="workarounds for the TensorFlow trainer")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OVERRIDES = ("_maybe_symbolic_build", "train_step", "test_step")


def one_cpu_mirrored():
    import tensorflow as tf

    return tf.distribute.MirroredStrategy(["/cpu:0"])


def small_regressor(strategy, build_optimizer):
    """A dict-input model compiled with a loss and a metric, under `strategy`."""
    with strategy.scope():
        inputs = {"a": keras.Input((3,), name="a"), "b": keras.Input((2,), name="b")}
        joined = keras.layers.Concatenate()([inputs["a"], inputs["b"]])
        model = keras.Model(inputs, keras.layers.Dense(1)(joined))
        model.compile(keras.optimizers.SGD(0.1), loss="mse", metrics=["mae"])
        if build_optimizer:
            model.optimizer.build(model.trainable_variables)
    return model


def regression_data():
    rng = np.random.default_rng(0)
    x = {"a": rng.normal(size=(8, 3)).astype("float32"),
         "b": rng.normal(size=(8, 2)).astype("float32")}
    return x, rng.normal(size=(8, 1)).astype("float32")


def count_symbolic_builds(model):
    """Counts the calls of Keras' `_symbolic_build`, what the skipped hook runs."""
    calls = []
    original = model._symbolic_build

    def spy(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    object.__setattr__(model, "_symbolic_build", spy)
    return calls


def test_without_a_strategy_the_model_is_left_alone():
    model = BertPretrainer(BertEncoder(tiny_config()))
    for distribution in (None, Distribution("default")):
        assert prepare_for_distribution(model, distribution) is model
    assert not set(OVERRIDES) & set(vars(model))


def test_something_else_than_a_strategy_is_refused():
    with pytest.raises(TypeError, match="needs a Distribution or a tf.distribute.Strategy"):
        prepare_for_distribution(BertPretrainer(BertEncoder(tiny_config())), "mirrored")


def test_keras_symbolic_build_hook_has_the_signature_the_override_keeps():
    from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

    parameters = inspect.signature(TensorFlowTrainer._maybe_symbolic_build).parameters
    assert [(p.name, p.default) for p in parameters.values()] == [
        ("self", inspect.Parameter.empty), ("iterator", None), ("data_batch", None)]


def test_under_a_strategy_fit_skips_kerass_symbolic_build_once_all_is_built():
    x, y = regression_data()
    strategy = one_cpu_mirrored()
    # Keras' fit under a strategy builds symbolically, every time (what needs skipping).
    plain = small_regressor(strategy, build_optimizer=True)
    plain_builds = count_symbolic_builds(plain)
    for _ in range(2):
        plain.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert len(plain_builds) == 2

    # Prepared: built only while something is unbuilt. The optimizer is built here,
    # the compiled loss and metrics are not before the first fit: this pins the
    # trainer attributes the override reads (`_compile_loss`, `_compile_metrics`).
    prepared = prepare_for_distribution(small_regressor(strategy, build_optimizer=True),
                                        Distribution("mirrored", strategy))
    assert not prepared._compile_loss.built and not prepared._compile_metrics.built
    prepared_builds = count_symbolic_builds(prepared)
    prepared.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert len(prepared_builds) == 1
    prepared.fit(x, y, batch_size=4, epochs=1, verbose=0)
    prepared.evaluate(x, y, batch_size=4, verbose=0)
    assert len(prepared_builds) == 1

    # An unbuilt optimizer is built symbolically too.
    unbuilt = prepare_for_distribution(small_regressor(strategy, build_optimizer=False),
                                       strategy)
    unbuilt_builds = count_symbolic_builds(unbuilt)
    unbuilt.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert len(unbuilt_builds) == 1 and unbuilt.optimizer.built


def two_output_fit(build_first):
    """`(train step traces, history)` of a `fit` without a strategy of a model with
    two outputs and a loss for each (SQuAD's span labeler is one)."""
    import tensorflow as tf

    inputs = keras.Input((3,), name="x")
    model = keras.Model(inputs, {"start": keras.layers.Dense(1, name="start")(inputs),
                                 "end": keras.layers.Dense(1, name="end")(inputs)})
    model.compile(keras.optimizers.SGD(0.1), loss={"start": "mse", "end": "mse"},
                  metrics={"start": ["mae"]})
    model.optimizer.build(model.trainable_variables)
    x, y = regression_data()
    dataset = tf.data.Dataset.from_tensor_slices(
        (x["a"], {"start": y, "end": 2 * y})).batch(4)
    counter = TraceCounter(model)
    if build_first:
        build_before_fit(model, dataset)
        assert model._compile_loss.built and model._compile_metrics.built
    history = model.fit(dataset, epochs=2, shuffle=False, verbose=0)
    return counter.counts["train"], history.history


def test_a_two_output_loss_built_before_fit_traces_the_step_once():
    # Keras builds the per-output loss trackers inside the first trace without a
    # strategy, and TensorFlow then traces the step again (what needs working around).
    assert two_output_fit(build_first=False)[0] == 2
    traces, history = two_output_fit(build_first=True)
    assert traces == 1
    # Its logs still hold the per-output losses and the metric, every epoch.
    assert {"loss", "start_loss", "end_loss", "start_mae"} <= set(history)
    assert all(len(values) == 2 for values in history.values())


def test_a_single_output_model_is_not_built_before_fit():
    """Its loss adds no variable inside the trace: a symbolic pass would be waste."""
    import tensorflow as tf

    model = small_regressor(tf.distribute.get_strategy(), build_optimizer=True)
    builds = count_symbolic_builds(model)
    x, y = regression_data()
    build_before_fit(model, tf.data.Dataset.from_tensor_slices((x, y)).batch(4))
    assert builds == [] and not model._compile_loss.built


def test_prepared_model_keeps_its_class_and_saved_config(tmp_path):
    strategy = one_cpu_mirrored()
    with strategy.scope():
        pretrainer = BertPretrainer(BertEncoder(tiny_config()))
        pretrainer.compile(optimizer="adam")
        pretrainer.optimizer.build(pretrainer.trainable_variables)
    config = pretrainer.get_config()
    prepare_for_distribution(pretrainer, strategy)
    hook = vars(pretrainer)["_maybe_symbolic_build"]
    prepare_for_distribution(pretrainer, strategy)  # a second call installs nothing
    assert vars(pretrainer)["_maybe_symbolic_build"] is hook
    assert type(pretrainer) is BertPretrainer and pretrainer.get_config() == config

    pretrainer.save(str(tmp_path / "pretrainer.keras"))
    loaded = keras.saving.load_model(str(tmp_path / "pretrainer.keras"))
    assert type(loaded) is BertPretrainer and loaded.get_config() == config
    assert not set(OVERRIDES) & set(vars(loaded))


def test_multi_worker_mirrored_fit_needs_both_workarounds(tmp_path):
    """Two local workers (TF_CONFIG on localhost) fit a pre-trainer three times: as
    Keras leaves it, with the symbolic build skipped only, and prepared (then it
    evaluates too)."""
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("localhost", 0))
            ports.append(s.getsockname()[1])
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    processes = []
    for index in range(2):
        env = dict(os.environ, KERAS_BACKEND="tensorflow", CUDA_VISIBLE_DEVICES="",
                   PYTHONPATH=os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]),
                   TF_CONFIG=json.dumps({"cluster": cluster,
                                         "task": {"type": "worker", "index": index}}))
        code = ("import sys; from tests.training.keras_workarounds_test import "
                "multi_worker_main; multi_worker_main(sys.argv[1])")
        processes.append(subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path / f"worker{index}.json")], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    results = []
    for index, process in enumerate(processes):
        log, _ = process.communicate(timeout=300)
        assert process.returncode == 0, log[-4000:]
        results.append(json.loads((tmp_path / f"worker{index}.json").read_text()))
    for result in results:
        # Keras' symbolic build averages the peeked dict batch with strategy.reduce.
        assert "unsupported type (<class 'dict'>)" in result["as_keras_leaves_it"]
        # Keras averages each step's scalar logs with strategy.reduce(..., axis=0).
        assert "Invalid reduction dimension 0 for input with 0 dimensions" in \
            result["symbolic_build_skipped_only"]
        assert result["prepared"]["loss"] > 0 and result["prepared"]["eval_loss"] > 0
    # The logs (of fit and evaluate) are averaged over the workers: the same on both.
    assert results[0]["prepared"] == results[1]["prepared"]


def multi_worker_main(output_path):
    """One worker of the multi-worker test; writes what each of its fits gave."""
    import tensorflow as tf

    from keras_bert_app.training import keras_workarounds

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    features = encoder_batch(batch=8, seq=8, lengths=[8] * 8)
    features[names.MASKED_LM_POSITIONS] = np.tile(np.array([1, 2], "int32"), (8, 1))
    masked_ids = (features[names.INPUT_WORD_IDS][:, 1:3] + 1) % TINY_VOCAB
    labels = {names.MASKED_LM_IDS: masked_ids,
              names.MASKED_LM_WEIGHTS: np.ones((8, 2), "float32"),
              names.NEXT_SENTENCE_LABELS: np.arange(8, dtype="int32") % 2}
    dataset = tf.data.Dataset.from_tensor_slices((features, labels)).repeat().batch(4)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = \
        tf.data.experimental.AutoShardPolicy.DATA
    dataset = dataset.with_options(options)

    def fit(prepare):
        keras.utils.set_random_seed(1)
        with strategy.scope():
            pretrainer = BertPretrainer(BertEncoder(tiny_config(num_hidden_layers=1)))
            pretrainer.compile(optimizer=keras.optimizers.Adam(1e-3))
            pretrainer.optimizer.build(pretrainer.trainable_variables)
        prepare(pretrainer)
        try:
            history = pretrainer.fit(dataset, steps_per_epoch=1, verbose=0).history
            evaluation = pretrainer.evaluate(dataset, steps=1, verbose=0,
                                             return_dict=True)
        except ValueError as error:  # both workers fail alike, before any collective
            return str(error)
        logs = {k: float(np.asarray(v[-1])) for k, v in history.items()}
        logs.update({"eval_" + k: float(np.asarray(v)) for k, v in evaluation.items()})
        return logs

    results = {
        "as_keras_leaves_it": fit(lambda model: None),
        "symbolic_build_skipped_only": fit(lambda model: keras_workarounds._install(
            model, "_maybe_symbolic_build",
            keras_workarounds._skip_symbolic_build_when_built)),
        "prepared": fit(lambda model: prepare_for_distribution(model, strategy)),
    }
    with open(output_path, "w") as f:
        json.dump(results, f)


def _finite_dataset_of_unknown_length():
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices((np.ones([6, 2], "float32"),
                                               np.ones([6, 1], "float32")))
    return data.filter(lambda x, y: True).batch(2).take(10)  # 3 batches, length unknown


def test_keras_still_warns_when_a_finite_evaluation_dataset_ends():
    """Pin: if Keras stops warning, `evaluate_to_the_end` is no longer needed."""
    model = keras.Sequential([keras.layers.Dense(1)])
    model.compile(loss="mse")
    with pytest.warns(UserWarning, match=END_OF_DATA_WARNING):
        model.evaluate(_finite_dataset_of_unknown_length(), verbose=0)


def test_evaluate_to_the_end_reads_every_batch_without_the_warning():
    import warnings

    model = keras.Sequential([keras.layers.Dense(1, kernel_initializer="zeros")])
    model.compile(loss="mse")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = evaluate_to_the_end(model, _finite_dataset_of_unknown_length(),
                                      return_dict=True, verbose=0)
    assert not [w for w in caught if END_OF_DATA_WARNING in str(w.message)]
    assert results["loss"] == pytest.approx(1.0)  # zero outputs, targets 1: every batch


def test_evaluate_to_the_end_lets_other_warnings_through(monkeypatch):
    import warnings

    model = keras.Sequential([keras.layers.Dense(1)])

    def evaluate(*args, **kwargs):  # warns as Keras does at the end, and otherwise
        warnings.warn(END_OF_DATA_WARNING + "; interrupting training.", UserWarning)
        warnings.warn("another warning", UserWarning)
        return {}

    monkeypatch.setattr(model, "evaluate", evaluate)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        evaluate_to_the_end(model, None)
    assert [str(w.message) for w in caught] == ["another warning"]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
