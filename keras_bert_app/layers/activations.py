"""Activation names of BERT configs, mapped to `keras.ops` functions.

Layers store the name (a string serialises and reads back everywhere) and look the
function up here when they are built.
"""

from keras import ops


def gelu_exact(x):
    """GELU with the erf (Hugging Face `gelu`, PyTorch's default)."""
    return ops.gelu(x, approximate=False)


def gelu_tanh(x):
    """GELU with the tanh approximation (Google's original BERT code, `gelu_new`)."""
    return ops.gelu(x, approximate=True)


def _linear(x):
    return x


_ACTIVATIONS = {
    "gelu": gelu_exact,
    "gelu_approximate": gelu_tanh,
    "gelu_new": gelu_tanh,
    "gelu_pytorch_tanh": gelu_tanh,
    "relu": ops.relu,
    "silu": ops.silu,
    "swish": ops.silu,
    "tanh": ops.tanh,
    "linear": _linear,
}

ACTIVATION_NAMES = frozenset(_ACTIVATIONS)


def get_activation(name):
    """The function for a `hidden_act` name; a clear error for an unknown one."""
    try:
        return _ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"Unknown activation {name!r}; expected one of "
                         f"{sorted(_ACTIVATIONS)}.") from None
