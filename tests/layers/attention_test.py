"""BertSelfAttention: multi-head attention that ignores padding keys."""

import sys

import keras
import numpy as np
import pytest

from keras_bert_app.layers import attention as attention_module
from keras_bert_app.layers.attention import BertSelfAttention
from tests.helpers import attention_weights_of, np_self_attention


@pytest.fixture
def fused_available(monkeypatch):
    """Lets the fused path run on every backend (the layer keeps TensorFlow on the
    explicit path), so its mechanics are tested wherever the suite runs."""
    helps = attention_module._fused_path_helps
    monkeypatch.setattr(attention_module, "_fused_path_helps",
                        lambda dtype: keras.backend.backend() == "tensorflow"
                        or helps(dtype))


def test_matches_a_numpy_multi_head_attention():
    layer = BertSelfAttention(num_heads=4, head_size=5)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 7, 20)).astype("float32")
    mask = np.array([[1] * 7, [1] * 4 + [0] * 3], "int32")
    out = keras.ops.convert_to_numpy(layer(x, mask))
    expected = np_self_attention(x, mask, attention_weights_of(layer), num_heads=4)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_attention_dropout_only_in_training():
    layer = BertSelfAttention(num_heads=2, head_size=8, dropout=0.5)
    x = np.random.default_rng(3).normal(size=(2, 6, 16)).astype("float32")
    mask = np.ones((2, 6), "int32")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x, mask)),
                                  keras.ops.convert_to_numpy(layer(x, mask)))
    assert not np.allclose(keras.ops.convert_to_numpy(layer(x, mask, training=True)),
                           keras.ops.convert_to_numpy(layer(x, mask)))


@pytest.mark.parametrize("dropout,training,fused", [
    (0.1, False, True), (0.1, True, False), (0.0, True, True), (0.0, False, True)])
def test_fused_attention_runs_whenever_attention_dropout_is_inactive(
        monkeypatch, fused_available, dropout, training, fused):
    calls = []
    attention = keras.ops.dot_product_attention

    def recording(*args, **kwargs):
        calls.append(kwargs)
        return attention(*args, **kwargs)

    monkeypatch.setattr(keras.ops, "dot_product_attention", recording)
    layer = BertSelfAttention(num_heads=2, head_size=8, dropout=dropout)
    layer(np.ones((1, 4, 16), "float32"), np.ones((1, 4), "int32"), training=training)
    assert len(calls) == (1 if fused else 0)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow only")
def test_tensorflow_keeps_the_explicit_path(monkeypatch):
    """Keras' TensorFlow op has no fused kernel and measured slower without XLA
    (benchmarks/attention_benchmark.py)."""
    calls = []
    monkeypatch.setattr(keras.ops, "dot_product_attention",
                        lambda *args, **kwargs: calls.append(kwargs))
    layer = BertSelfAttention(num_heads=2, head_size=8)
    out = layer(np.ones((1, 4, 16), "float32"), np.ones((1, 4), "int32"))
    assert calls == [] and tuple(out.shape) == (1, 4, 16)


def _explicit_path(layer):
    """Makes `layer` take its explicit (dropout) path in training, with the dropout
    itself switched off, so both paths compute the same function."""
    layer.dropout = 0.5
    layer.dropout_layer.rate = 0.0


@pytest.mark.parametrize("lengths", [[7, 4], [7, 7], [1, 3]])
def test_fused_and_explicit_paths_agree(fused_available, lengths):
    layer = BertSelfAttention(num_heads=4, head_size=5)
    x = np.random.default_rng(4).normal(size=(2, 7, 20)).astype("float32")
    mask = (np.arange(7)[None, :] < np.array(lengths)[:, None]).astype("int32")
    fused = keras.ops.convert_to_numpy(layer(x, mask, training=True))  # dropout 0: fused
    _explicit_path(layer)
    explicit = keras.ops.convert_to_numpy(layer(x, mask, training=True))
    for row, n in enumerate(lengths):
        np.testing.assert_allclose(fused[row, :n], explicit[row, :n], atol=1e-5)
    expected = np_self_attention(x, mask, attention_weights_of(layer), num_heads=4)
    np.testing.assert_allclose(explicit, expected, atol=1e-5)


@pytest.mark.parametrize("padding", ["huge", "random"])
def test_padding_keys_get_exactly_zero_weight_on_both_paths(fused_available, padding):
    # Padding holding huge values would dominate any weight that is not exactly 0.
    layer = BertSelfAttention(num_heads=2, head_size=8)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(1, 6, 16)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0, 0]], "int32")
    other = x.copy()
    other[:, 3:] = 1e4 if padding == "huge" else rng.normal(size=(1, 3, 16)) * 100
    short = keras.ops.convert_to_numpy(layer(x[:, :3], mask[:, :3]))
    for explicit in (False, True):
        if explicit:
            _explicit_path(layer)
        out = keras.ops.convert_to_numpy(layer(other, mask, training=explicit))
        np.testing.assert_allclose(out[:, :3], short, atol=1e-6)


def test_dropout_falls_on_the_attention_probabilities():
    """Google's BERT drops attention probabilities ([batch, heads, seq, seq], rows
    summing to 1), not the context or the output."""
    layer = BertSelfAttention(num_heads=2, head_size=8, dropout=0.5)
    seen = []
    call = layer.dropout_layer.call

    def recording_call(inputs, training=False):
        seen.append(keras.ops.convert_to_numpy(inputs))
        return call(inputs, training=training)

    layer.dropout_layer.call = recording_call
    x = np.random.default_rng(6).normal(size=(2, 5, 16)).astype("float32")
    mask = np.array([[1] * 5, [1, 1, 0, 0, 0]], "int32")
    layer(x, mask, training=True)
    assert len(seen) == 1 and seen[0].shape == (2, 2, 5, 5)
    np.testing.assert_allclose(seen[0].sum(-1), 1.0, atol=1e-6)
    assert np.all(seen[0][1, :, :, 2:] == 0.0)  # padding keys


def test_softmax_runs_in_float32_under_mixed_precision(monkeypatch):
    seen = []
    softmax = keras.ops.softmax

    def recording_softmax(x, axis=-1):
        seen.append(keras.backend.standardize_dtype(x.dtype))
        return softmax(x, axis=axis)

    monkeypatch.setattr(keras.ops, "softmax", recording_softmax)
    layer = BertSelfAttention(num_heads=2, head_size=8, dropout=0.1,
                              dtype="mixed_bfloat16")
    out = layer(np.ones((1, 4, 16), "float32"), np.ones((1, 4), "int32"),
                training=True)
    assert seen == ["float32"]
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_fused_path_under_mixed_precision_stays_close_to_float32(fused_available,
                                                                 policy):
    rng = np.random.default_rng(7)
    # Large activations: a float16 softmax without max-subtraction would overflow.
    x = (rng.normal(size=(2, 6, 16)) * 4).astype("float32")
    mask = np.array([[1] * 6, [1] * 3 + [0] * 3], "int32")
    exact = BertSelfAttention(num_heads=2, head_size=8)
    mixed = BertSelfAttention(num_heads=2, head_size=8, dtype=policy)
    exact(x, mask), mixed(x, mask)
    mixed.set_weights(exact.get_weights())
    want = keras.ops.convert_to_numpy(exact(x, mask))
    got = keras.ops.convert_to_numpy(keras.ops.cast(mixed(x, mask), "float32"))
    assert np.isfinite(got).all()
    tolerance = 0.1 if policy == "mixed_bfloat16" else 0.02
    np.testing.assert_allclose(got[0], want[0], atol=tolerance * np.abs(want).max())
    np.testing.assert_allclose(got[1, :3], want[1, :3], atol=tolerance * np.abs(want).max())


def test_config_round_trip():
    layer = BertSelfAttention(num_heads=3, head_size=4, dropout=0.2,
                              initializer_range=0.05)
    assert BertSelfAttention.from_config(layer.get_config()).get_config() == \
        layer.get_config()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
