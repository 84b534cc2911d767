"""BertMaskedLMHead: logits at masked positions, tied to the word embeddings."""

import sys

import keras
import numpy as np
import pytest

from keras_bert_app.layers.masked_lm_head import BertMaskedLMHead
from tests.helpers import np_gelu_exact, np_layer_norm


def test_logits_at_masked_positions_use_the_tied_table():
    embedding = keras.layers.Embedding(30, 8)
    embedding.build((None,))
    head = BertMaskedLMHead(vocab_size=30, embedding_size=8, embedding=embedding)
    rng = np.random.default_rng(0)
    seq = rng.normal(size=(2, 6, 8)).astype("float32")
    positions = np.array([[0, 5, 2], [4, 4, 1]], "int32")
    logits = keras.ops.convert_to_numpy(head(seq, positions))
    assert logits.shape == (2, 3, 30) and logits.dtype == np.float32

    n = keras.ops.convert_to_numpy
    gathered = np.stack([seq[b, positions[b]] for b in range(2)])
    h = np_gelu_exact(gathered @ n(head.transform_dense.kernel)
                      + n(head.transform_dense.bias))
    h = np_layer_norm(h, n(head.layer_norm.gamma), n(head.layer_norm.beta), 1e-12)
    expected = h @ n(embedding.embeddings).T + n(head.output_bias)
    np.testing.assert_allclose(logits, expected, atol=1e-5)

    # Tied: a change to the embedding table changes the logits.
    embedding.embeddings.assign(embedding.embeddings * 2.0)
    assert not np.allclose(keras.ops.convert_to_numpy(head(seq, positions)), logits)


def test_untied_head_owns_its_output_kernel():
    head = BertMaskedLMHead(vocab_size=30, embedding_size=8)
    head(np.ones((1, 4, 8), "float32"), np.zeros((1, 2), "int32"))
    assert tuple(head.output_kernel.shape) == (30, 8)


def test_logits_are_float32_under_mixed_precision():
    head = BertMaskedLMHead(vocab_size=30, embedding_size=8, dtype="mixed_bfloat16")
    out = head(np.ones((1, 4, 8), "float32"), np.zeros((1, 2), "int32"))
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    assert head.layer_norm.compute_dtype == "float32"


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
