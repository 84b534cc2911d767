"""`layers.Dense`: Keras' dense layer in weights, names and results; in a TensorFlow
graph that runs without Grappler its sequence product is one `Einsum` op instead of
Keras' `tensordot` (fewer ops to trace and run in a short CPU run's steps)."""

import contextlib
import sys

import keras
import numpy as np
import pytest

from keras_bert_app.layers import Dense

TF = keras.backend.backend() == "tensorflow"


def pair(units=6, activation="gelu"):
    """Keras' layer and ours, with the same weights."""
    ours = Dense(units, activation=activation, name="d")
    theirs = keras.layers.Dense(units, activation=activation, name="d")
    x = np.random.default_rng(0).normal(size=[2, 5, 4]).astype("float32")
    ours.build(x.shape)
    theirs.build(x.shape)
    theirs.set_weights(ours.get_weights())
    return ours, theirs, x


@contextlib.contextmanager
def grappler(enabled):
    import tensorflow as tf

    before = tf.config.optimizer.get_experimental_options().get(
        "disable_meta_optimizer", False)
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": not enabled})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": before})


def test_it_is_keras_dense_in_results_weights_and_config():
    ours, theirs, x = pair()
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours(x)),
                                  keras.ops.convert_to_numpy(theirs(x)))
    assert [w.path for w in ours.weights] == [w.path for w in theirs.weights] == [
        "d/kernel", "d/bias"]
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(ours))
    assert type(again) is Dense and again.get_config() == ours.get_config()


def test_weights_files_are_interchangeable_with_keras_dense(tmp_path):
    """A model's weights file keeps its paths (models saved before this layer load)."""
    def model(layer):
        inputs = keras.Input([5, 4])
        return keras.Model(inputs, layer(inputs))

    ours, theirs, x = pair()
    theirs_model = model(theirs)
    theirs_model.save_weights(tmp_path / "keras.weights.h5")
    loaded = model(Dense(6, activation="gelu", name="d"))
    loaded.load_weights(tmp_path / "keras.weights.h5")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(x)),
                                  keras.ops.convert_to_numpy(theirs_model(x)))


@pytest.mark.skipif(not TF, reason="a TensorFlow graph's ops")
@pytest.mark.parametrize("enabled", [False, True])
def test_without_grappler_the_product_is_one_einsum_op(enabled):
    import tensorflow as tf

    ours, theirs, x = pair()
    with grappler(enabled):
        graph = tf.function(ours).get_concrete_function(
            tf.TensorSpec([None, None, 4], tf.float32)).graph
        keras_graph = tf.function(theirs).get_concrete_function(
            tf.TensorSpec([None, None, 4], tf.float32)).graph
        np.testing.assert_allclose(tf.function(ours)(x), tf.function(theirs)(x),
                                   atol=1e-6)
    ops = [op.type for op in graph.get_operations()]
    keras_ops = [op.type for op in keras_graph.get_operations()]
    assert "MatMul" in keras_ops and "Einsum" not in keras_ops  # Keras' tensordot
    if enabled:  # Grappler folds the tensordot's shape arithmetic: Keras' own graph
        assert ops == keras_ops
    else:
        assert ops.count("Einsum") == 1 and "MatMul" not in ops
        assert len(ops) < len(keras_ops) - 10


@pytest.mark.skipif(not TF, reason="a TensorFlow graph's ops")
def test_two_dimensional_inputs_and_lora_keep_keras_product():
    import tensorflow as tf

    ours, _, _ = pair()
    with grappler(False):
        flat = tf.function(ours).get_concrete_function(tf.TensorSpec([None, 4])).graph
        ours.enable_lora(2)
        lora = tf.function(ours).get_concrete_function(
            tf.TensorSpec([None, None, 4])).graph
    for graph in (flat, lora):
        assert "Einsum" not in [op.type for op in graph.get_operations()]


@pytest.mark.skipif(not TF, reason="a TensorFlow graph's ops")
def test_under_mixed_precision_the_kernel_is_cast_and_the_product_stays_one_op():
    import tensorflow as tf

    ours = Dense(6, dtype="mixed_bfloat16", name="d")
    theirs = keras.layers.Dense(6, dtype="mixed_bfloat16", name="d")
    x = np.random.default_rng(1).normal(size=[2, 5, 4]).astype("float32")
    ours.build(x.shape)
    theirs.build(x.shape)
    theirs.set_weights(ours.get_weights())
    with grappler(False):
        function = tf.function(ours)
        graph = function.get_concrete_function(tf.TensorSpec([None, None, 4])).graph
        got = function(x)
    assert got.dtype == tf.bfloat16 and ours.kernel.dtype == "float32"
    assert [op.type for op in graph.get_operations()].count("Einsum") == 1
    np.testing.assert_allclose(tf.cast(got, tf.float32), tf.cast(theirs(x), tf.float32),
                               rtol=2e-2, atol=2e-2)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
