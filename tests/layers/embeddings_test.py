"""BertEmbeddings: word + position + segment, LayerNorm, optional factorisation."""

import sys

import keras
import numpy as np
import pytest

from keras_bert_app.layers.embeddings import BertEmbeddings
from tests.helpers import np_layer_norm


def make_layer(**overrides):
    args = dict(vocab_size=50, hidden_size=16, max_position_embeddings=20,
                type_vocab_size=3, dropout=0.0, layer_norm_eps=1e-12)
    args.update(overrides)
    return BertEmbeddings(**args)


def test_output_is_layer_norm_of_the_three_summed_tables():
    layer = make_layer()
    ids = np.array([[3, 7, 7, 0]], "int32")
    types = np.array([[0, 0, 1, 2]], "int32")
    out = keras.ops.convert_to_numpy(layer(ids, types))
    word = keras.ops.convert_to_numpy(layer.word_embeddings.embeddings)
    pos = keras.ops.convert_to_numpy(layer.position_embeddings)
    typ = keras.ops.convert_to_numpy(layer.type_embeddings.embeddings)
    summed = word[ids[0]] + pos[:4] + typ[types[0]]
    gamma = keras.ops.convert_to_numpy(layer.layer_norm.gamma)
    beta = keras.ops.convert_to_numpy(layer.layer_norm.beta)
    np.testing.assert_allclose(out[0], np_layer_norm(summed, gamma, beta, 1e-12),
                               atol=1e-5)
    # The same word at two positions is embedded differently (learned positions).
    assert np.abs(out[0, 1] - out[0, 2]).max() > 1e-3


def test_factorised_embeddings_are_projected_to_hidden_size():
    layer = make_layer(embedding_size=4)
    out = layer(np.ones((2, 5), "int32"), np.zeros((2, 5), "int32"))
    assert tuple(out.shape) == (2, 5, 16)
    # Tables of width 4, LayerNorm of width 4, projection 4 -> 16.
    expected = 50 * 4 + 20 * 4 + 3 * 4 + 2 * 4 + (4 * 16 + 16)
    assert layer.count_params() == expected
    assert tuple(layer.embedding_matrix.shape) == (50, 4)


def test_dropout_only_in_training():
    layer = make_layer(dropout=0.5)
    ids = np.ones((2, 6), "int32")
    inference = [keras.ops.convert_to_numpy(layer(ids, ids * 0)) for _ in range(2)]
    np.testing.assert_array_equal(inference[0], inference[1])
    training = keras.ops.convert_to_numpy(layer(ids, ids * 0, training=True))
    assert (training == 0).mean() > 0.2


def test_config_round_trip():
    layer = make_layer(embedding_size=8)
    clone = BertEmbeddings.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
