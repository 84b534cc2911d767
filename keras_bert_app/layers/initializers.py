"""The truncated-normal initializer of every BERT weight matrix, and a scope for
building a model whose weights are all set right after (a copy, or a load).

Drawing the initial values is not free: MiniLM's 22.7M truncated-normal values took
~0.4 s on 2 cores (TensorFlow), and a model loaded from a directory, or copied to
float32 for evaluation and saving, overwrote them at once. Inside
`weights_set_after()` this initializer returns zeros instead.

Only where every weight is then replaced: `set_weights` with all of a model's
weights (Keras checks their number and shapes), `load_every_weight` of a whole
weights file, or an import that raises on a missing weight. A model that is trained
from its initial values must never be built inside.
"""

import contextlib
import threading
import warnings

import keras

_scope = threading.local()


@keras.saving.register_keras_serializable(package="keras_bert_app")
class TruncatedNormal(keras.initializers.TruncatedNormal):
    """Keras' `TruncatedNormal` (same values for the same seed), but zeros inside
    `weights_set_after()`.

    Example:
    >>> dense = keras.layers.Dense(8, kernel_initializer=TruncatedNormal(stddev=0.02))
    """

    def __call__(self, shape, dtype=None):
        if getattr(_scope, "depth", 0):
            return keras.ops.zeros(shape, dtype=dtype)
        return super().__call__(shape, dtype=dtype)


@contextlib.contextmanager
def weights_set_after():
    """Builds models without drawing their random initial values (see the module
    docstring for when that is right). In this thread only; nests."""
    _scope.depth = getattr(_scope, "depth", 0) + 1
    try:
        yield
    finally:
        _scope.depth -= 1


class IncompleteWeights(ValueError):
    """A weights file Keras loaded leniently, leaving some of the model's state at
    its initial values: `path` is the file, `reason` says what it lacks."""

    def __init__(self, path, reason):
        super().__init__(f"{path} {reason}")
        self.path, self.reason = path, reason


def load_error_reason(error):
    """`load_every_weight`'s error as text for a message that names the file
    already: an `IncompleteWeights`' reason, else the error (Keras' own name a
    layer, not the file)."""
    return error.reason if isinstance(error, IncompleteWeights) else str(error)


def load_every_weight(model, path, objects_to_skip=None, require_optimizer=False):
    """`model.load_weights(path)`, failing unless every weight of `model` is in the
    file. Keras fails on a layer the file lacks (a `ValueError` naming the layer;
    tests/layers/initializers_test.py pins that), except in one lenient path: files
    from Keras versions that did not write nested containers' groups load with a
    "Skipping nested container" warning, the affected layers keeping their initial
    values (inside `weights_set_after`: zeros). Such a load is a `ValueError` here.
    Keras also gives that warning on its way to a real mismatch's own error, so the
    warnings are looked at only once the load returned.

    Keras also loads a file whose optimizer state does not fit `model`'s optimizer
    (none saved, or another optimizer's), with a "Skipping variable loading for
    optimizer" warning, the optimizer keeping its fresh state: an error here with
    `require_optimizer` (a training checkpoint). `objects_to_skip`: objects (e.g.
    `[model.optimizer]`) neither read nor checked (Keras' `load_weights` argument).
    Both lenient loads raise `IncompleteWeights`."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if objects_to_skip:
            keras.saving.load_weights(model, path, objects_to_skip=list(objects_to_skip))
        else:
            model.load_weights(path)
    nested = [w for w in caught if "Skipping nested container" in str(w.message)]
    optimizer = [w for w in caught if require_optimizer and
                 "Skipping variable loading for optimizer" in str(w.message)]
    for other in caught:
        if other not in nested and other not in optimizer:
            warnings.warn_explicit(other.message, other.category, other.filename,
                                   other.lineno)
    if nested:
        raise IncompleteWeights(path, f"does not hold every weight of "
                                      f"{type(model).__name__}: {nested[0].message}")
    if optimizer:
        raise IncompleteWeights(path, "does not hold optimizer state that fits its "
                                      f"optimizer: {optimizer[0].message}")
