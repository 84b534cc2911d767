"""Rematerialised transformer blocks (`BertEncoder(remat=True)`): the same gradients,
dropout included, the same seed-state advance, and the setting in the saved config.

Runs under every backend (scripts/test.sh runs tests/models under jax and torch too):
each backend recomputes in its own way (tf.recompute_grad, jax.checkpoint,
torch.utils.checkpoint).
"""

import sys

import keras
import numpy as np
import pytest

from keras_bert_app import names
from keras_bert_app.layers.transformer import BertTransformerBlock
from keras_bert_app.models import BertEncoder, BertPretrainer
from tests.helpers import TINY_VOCAB, encoder_batch, tiny_config, to_numpy


def pretraining_batch(batch=4, seq=12, predictions=3):
    rng = np.random.default_rng(3)
    x = encoder_batch(batch=batch, seq=seq, lengths=[seq, seq - 2, seq - 5, 4][:batch])
    x[names.MASKED_LM_POSITIONS] = np.stack(
        [rng.choice(np.arange(1, 4), predictions, replace=False)
         for _ in range(batch)]).astype("int32")
    y = {names.MASKED_LM_IDS: rng.integers(1, TINY_VOCAB, (batch, predictions)).astype("int32"),
         names.MASKED_LM_WEIGHTS: np.ones((batch, predictions), "float32"),
         names.NEXT_SENTENCE_LABELS: rng.integers(0, 2, (batch, 1)).astype("int32")}
    return x, y


def pretrainer(remat, share_layers=False, jit_compile=False, dtype=None):
    """A tiny pre-training model with BERT's dropout (0.1 on every branch and on the
    attention probabilities), SGD with learning rate 1: one step's weight change is
    minus the gradient. Without XLA by default (TensorFlow still runs a tf.function;
    a JAX compilation costs more than these steps)."""
    keras.utils.set_random_seed(7)  # the weights and the dropout seed states
    config = tiny_config(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                         share_layers=share_layers)
    model = BertPretrainer(BertEncoder(config, remat=remat, dtype=dtype))
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0),
                  jit_compile=jit_compile)
    return model


def values(variables):
    return [np.array(keras.ops.convert_to_numpy(v)) for v in variables]


def train_steps(model, steps=2, seed=11):
    """`(loss, gradients)` of each step, in training mode (dropout on)."""
    # The dropout masks come from each Dropout's seed generator on TensorFlow and JAX,
    # from torch's global generator on torch (Keras' unseeded fast path, whose state
    # torch.utils.checkpoint restores for the recompute): both start from here.
    keras.utils.set_random_seed(seed)
    x, y = pretraining_batch()
    history = []
    for _ in range(steps):
        before = values(model.trainable_variables)
        loss = model.train_on_batch(x, y)
        after = values(model.trainable_variables)
        history.append((loss, [b - a for b, a in zip(before, after)]))
    return history


def assert_same_steps(got, expected):
    for (loss, grads), (expected_loss, expected_grads) in zip(got, expected):
        np.testing.assert_allclose(loss, expected_loss, rtol=1e-5)
        for g, e in zip(grads, expected_grads):
            np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("share_layers", [False, True])
def test_gradients_with_dropout_equal_those_without_remat(share_layers):
    plain, remat = pretrainer(False, share_layers), pretrainer(True, share_layers)
    states = lambda m: values(v for v in m.non_trainable_variables)
    np.testing.assert_array_equal(np.concatenate([s.ravel() for s in states(plain)]),
                                  np.concatenate([s.ravel() for s in states(remat)]))
    expected = train_steps(plain)
    got = train_steps(remat)
    assert_same_steps(got, expected)
    # The seed generators advanced exactly as without remat: the next step's masks
    # are the same too (two steps above), and so are the ones after.
    for a, b in zip(states(plain), states(remat)):
        np.testing.assert_array_equal(a, b)


def test_a_frozen_block_stays_frozen():
    # Its weights are not trainable: read, not differentiated nor written back.
    models = []
    for remat in (False, True):
        model = pretrainer(remat)
        model.encoder.transformer_layers[0].trainable = False
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0), jit_compile=False)
        models.append(model)
    frozen = values(models[1].encoder.transformer_layers[0].weights)
    assert_same_steps(train_steps(models[1], steps=1), train_steps(models[0], steps=1))
    for a, b in zip(frozen, values(models[1].encoder.transformer_layers[0].weights)):
        np.testing.assert_array_equal(a, b)


def test_gradients_equal_under_mixed_bfloat16():
    # The recompute reads the float32 weights and casts them as the forward pass did.
    expected = train_steps(pretrainer(False, dtype="mixed_bfloat16"))
    assert_same_steps(train_steps(pretrainer(True, dtype="mixed_bfloat16")), expected)


@pytest.mark.skipif(keras.backend.backend() == "torch", reason="no XLA on torch")
def test_gradients_with_dropout_equal_under_xla():
    # The compiled step: tf.recompute_grad inside XLA; jax.checkpoint inside jax.jit.
    expected = train_steps(pretrainer(False, jit_compile=True))
    assert_same_steps(train_steps(pretrainer(True, jit_compile=True)), expected)


def test_the_comparison_sees_a_different_dropout_mask():
    # The test above can fail: other dropout masks (one more draw from the seed
    # generators; another global seed on torch) change the gradients far beyond its
    # tolerance.
    plain, shifted = pretrainer(False), pretrainer(True)
    for layer in shifted.encoder.transformer_layers:
        layer.output_dropout.seed_generator.next()
    with pytest.raises(AssertionError):
        assert_same_steps(train_steps(shifted, steps=1, seed=12),
                          train_steps(plain, steps=1))


def test_block_outputs_equal_in_inference_and_without_dropout():
    def block(remat):
        keras.utils.set_random_seed(2)
        layer = BertTransformerBlock(num_heads=2, head_size=4, intermediate_size=16,
                                     remat=remat)
        layer.build((2, 5, 8))
        return layer
    plain, remat = block(False), block(True)
    x = np.random.default_rng(0).normal(size=(2, 5, 8)).astype("float32")
    mask = np.array([[1] * 5, [1, 1, 1, 0, 0]], "int32")
    for training in (False, True):
        np.testing.assert_allclose(to_numpy(remat(x, mask, training=training)),
                                   to_numpy(plain(x, mask, training=training)), atol=1e-6)


def test_remat_is_in_the_config_and_survives_a_keras_file(tmp_path):
    model = BertPretrainer(BertEncoder(tiny_config(), remat=True))
    assert model.encoder.get_config()["remat"] is True
    assert all(block.remat for block in model.encoder.transformer_layers)
    assert BertEncoder.from_config(model.encoder.get_config()).remat is True
    x, _ = pretraining_batch()
    before = to_numpy(model.predict(x, verbose=0))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert loaded.encoder.remat is True
    assert all(block.remat for block in loaded.encoder.transformer_layers)
    np.testing.assert_allclose(to_numpy(loaded.predict(x, verbose=0))[names.MLM_LOGITS],
                               before[names.MLM_LOGITS], atol=1e-6)


def test_a_config_without_remat_loads_as_before():
    # Configs saved before the option existed have no "remat" key.
    config = BertEncoder(tiny_config()).get_config()
    del config["remat"]
    assert BertEncoder.from_config(config).remat is False


def test_weights_move_between_remat_and_plain_models(tmp_path):
    remat = BertPretrainer(BertEncoder(tiny_config(), remat=True))
    remat.save_weights(tmp_path / "w.weights.h5")
    plain = BertPretrainer(BertEncoder(tiny_config()))
    plain.load_weights(tmp_path / "w.weights.h5")
    x, _ = pretraining_batch()
    np.testing.assert_allclose(to_numpy(plain(x))[names.MLM_LOGITS],
                               to_numpy(remat(x))[names.MLM_LOGITS], atol=1e-6)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
