"""BertTransformerBlock: post-LN attention and feed-forward sublayers."""

import sys

import keras
import numpy as np
import pytest

from keras_bert_app.layers.transformer import BertTransformerBlock
from tests.helpers import (attention_weights_of, np_gelu_exact, np_layer_norm,
                           np_self_attention)


def np_block(block, x, mask):
    n = keras.ops.convert_to_numpy
    attn = np_self_attention(x, mask, attention_weights_of(block.attention),
                             block.num_heads)
    ln1 = block.attention_layer_norm
    h = np_layer_norm(x + attn, n(ln1.gamma), n(ln1.beta), block.layer_norm_eps)
    inter = np_gelu_exact(h @ n(block.intermediate_dense.kernel)
                          + n(block.intermediate_dense.bias))
    out = inter @ n(block.output_dense.kernel) + n(block.output_dense.bias)
    ln2 = block.output_layer_norm
    return np_layer_norm(h + out, n(ln2.gamma), n(ln2.beta), block.layer_norm_eps)


def test_matches_a_numpy_post_layer_norm_block():
    block = BertTransformerBlock(num_heads=2, head_size=6, intermediate_size=24,
                                 hidden_act="gelu", layer_norm_eps=1e-12)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 12)).astype("float32")
    mask = np.array([[1] * 5, [1, 1, 1, 0, 0]], "int32")
    out = keras.ops.convert_to_numpy(block(x, mask))
    np.testing.assert_allclose(out, np_block(block, x, mask), atol=1e-5)


def test_dropouts_only_in_training():
    block = BertTransformerBlock(num_heads=2, head_size=6, intermediate_size=24,
                                 hidden_dropout=0.3, attention_dropout=0.3)
    x = np.random.default_rng(1).normal(size=(2, 5, 12)).astype("float32")
    mask = np.ones((2, 5), "int32")
    first = keras.ops.convert_to_numpy(block(x, mask))
    np.testing.assert_array_equal(first, keras.ops.convert_to_numpy(block(x, mask)))
    assert not np.allclose(first, keras.ops.convert_to_numpy(block(x, mask, training=True)))


def test_tanh_gelu_changes_the_output():
    exact = BertTransformerBlock(num_heads=2, head_size=6, intermediate_size=24)
    tanh = BertTransformerBlock(num_heads=2, head_size=6, intermediate_size=24,
                                hidden_act="gelu_approximate")
    x = np.random.default_rng(2).normal(size=(1, 4, 12)).astype("float32")
    mask = np.ones((1, 4), "int32")
    exact(x, mask), tanh(x, mask)
    # Weights of unit scale: with the 0.02 initializer the pre-activations sit near 0,
    # where the two GELUs agree to ~1e-8.
    rng = np.random.default_rng(3)
    weights = [rng.normal(size=w.shape).astype("float32") for w in exact.get_weights()]
    exact.set_weights(weights)
    tanh.set_weights(weights)
    diff = np.abs(keras.ops.convert_to_numpy(exact(x, mask))
                  - keras.ops.convert_to_numpy(tanh(x, mask))).max()
    assert 1e-5 < diff < 1e-1


def test_config_round_trip():
    block = BertTransformerBlock(num_heads=2, head_size=6, intermediate_size=24,
                                 hidden_act="relu", hidden_dropout=0.2,
                                 attention_dropout=0.1, layer_norm_eps=1e-6)
    assert BertTransformerBlock.from_config(block.get_config()).get_config() == \
        block.get_config()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
