"""Activation names map to the exact or tanh GELU and the other BERT activations."""

import math
import sys

import numpy as np
import pytest
from keras import ops

from keras_bert_app.layers.activations import get_activation

X = np.linspace(-4.0, 4.0, 33).astype("float32")


def test_gelu_is_the_exact_erf_form():
    expected = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in X])
    np.testing.assert_allclose(ops.convert_to_numpy(get_activation("gelu")(X)),
                               expected, atol=1e-6)


@pytest.mark.parametrize("name", ["gelu_approximate", "gelu_new", "gelu_pytorch_tanh"])
def test_tanh_gelu_names_are_the_tanh_approximation(name):
    expected = 0.5 * X * (1 + np.tanh(math.sqrt(2 / math.pi) * (X + 0.044715 * X ** 3)))
    out = ops.convert_to_numpy(get_activation(name)(X))
    np.testing.assert_allclose(out, expected, atol=1e-6)
    # Not the same function as the exact form: they differ by up to ~5e-4.
    assert np.abs(out - ops.convert_to_numpy(get_activation("gelu")(X))).max() > 1e-4


def test_other_activations():
    np.testing.assert_allclose(ops.convert_to_numpy(get_activation("relu")(X)),
                               np.maximum(X, 0))
    np.testing.assert_allclose(ops.convert_to_numpy(get_activation("swish")(X)),
                               X / (1 + np.exp(-X)), atol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(get_activation("linear")(X)), X)


def test_unknown_activation_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown activation 'mish'"):
        get_activation("mish")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
