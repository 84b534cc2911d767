"""BertSelfAttention: multi-head attention that ignores padding keys."""

import sys

import keras
import numpy as np
import pytest

from keras_bert_app.layers.attention import BertSelfAttention
from tests.helpers import attention_weights_of, np_self_attention


def test_matches_a_numpy_multi_head_attention():
    layer = BertSelfAttention(num_heads=4, head_size=5)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 7, 20)).astype("float32")
    mask = np.array([[1] * 7, [1] * 4 + [0] * 3], "int32")
    out = keras.ops.convert_to_numpy(layer(x, mask))
    expected = np_self_attention(x, mask, attention_weights_of(layer), num_heads=4)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_padding_keys_do_not_change_real_positions():
    layer = BertSelfAttention(num_heads=2, head_size=8)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1, 6, 16)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0, 0]], "int32")
    other = x.copy()
    other[:, 3:] = rng.normal(size=(1, 3, 16)) * 100  # garbage in the padding
    a = keras.ops.convert_to_numpy(layer(x, mask))
    b = keras.ops.convert_to_numpy(layer(other, mask))
    np.testing.assert_allclose(a[:, :3], b[:, :3], atol=1e-6)


def test_attention_dropout_only_in_training():
    layer = BertSelfAttention(num_heads=2, head_size=8, dropout=0.5)
    x = np.random.default_rng(3).normal(size=(2, 6, 16)).astype("float32")
    mask = np.ones((2, 6), "int32")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x, mask)),
                                  keras.ops.convert_to_numpy(layer(x, mask)))
    assert not np.allclose(keras.ops.convert_to_numpy(layer(x, mask, training=True)),
                           keras.ops.convert_to_numpy(layer(x, mask)))


def test_softmax_runs_in_float32_under_mixed_precision(monkeypatch):
    seen = []
    softmax = keras.ops.softmax

    def recording_softmax(x, axis=-1):
        seen.append(keras.backend.standardize_dtype(x.dtype))
        return softmax(x, axis=axis)

    monkeypatch.setattr(keras.ops, "softmax", recording_softmax)
    layer = BertSelfAttention(num_heads=2, head_size=8, dtype="mixed_bfloat16")
    out = layer(np.ones((1, 4, 16), "float32"), np.ones((1, 4), "int32"))
    assert seen == ["float32"]
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"


def test_config_round_trip():
    layer = BertSelfAttention(num_heads=3, head_size=4, dropout=0.2,
                              initializer_range=0.05)
    assert BertSelfAttention.from_config(layer.get_config()).get_config() == \
        layer.get_config()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
