"""Random initial values are drawn as Keras draws them, except for models built to
have every weight replaced at once (a copy, a load), which skip the draw."""

import sys
import threading

import keras
import numpy as np
import pytest

from keras_bert_app.layers.initializers import TruncatedNormal, weights_set_after
from tests.helpers import tiny_config, to_numpy


def test_outside_the_scope_the_values_are_keras_own_for_the_same_seed():
    ours = to_numpy(TruncatedNormal(stddev=0.02, seed=7)([64, 32]))
    theirs = to_numpy(keras.initializers.TruncatedNormal(stddev=0.02, seed=7)([64, 32]))
    np.testing.assert_array_equal(ours, theirs)
    assert 0 < np.abs(ours).max() <= 0.04  # truncated at two standard deviations


def test_inside_the_scope_no_values_are_drawn_in_this_thread_only():
    initializer = TruncatedNormal(stddev=0.02, seed=7)
    drawn_elsewhere = []
    with weights_set_after():
        with weights_set_after():  # nests
            assert not np.any(to_numpy(initializer([8, 4])))
        assert not np.any(to_numpy(initializer([8, 4])))
        other = threading.Thread(
            target=lambda: drawn_elsewhere.append(to_numpy(initializer([8, 4]))))
        other.start()
        other.join()
    assert np.any(drawn_elsewhere[0])
    assert np.any(to_numpy(initializer([8, 4])))  # drawn again after the scope


def test_the_initializer_round_trips_through_a_layer_config():
    dense = keras.layers.Dense(3, kernel_initializer=TruncatedNormal(stddev=0.05, seed=1))
    restored = keras.layers.Dense.from_config(dense.get_config())
    assert isinstance(restored.kernel_initializer, TruncatedNormal)
    assert restored.kernel_initializer.stddev == 0.05


def test_a_weights_file_missing_a_layer_fails_to_load(tmp_path):
    """What the scope relies on for `load_weights` (Keras' behaviour, pinned): a model
    built without drawing its values cannot keep zeros for a layer the file lacks."""
    from keras_bert_app.models import BertClassifier, BertEncoder, BertPretrainer

    # Keras matches saved weights by attribute path and count: a pre-trainer without
    # the next-sentence head lacks the path of the classifier's head.
    file = str(tmp_path / "pretrainer.weights.h5")
    BertPretrainer(BertEncoder(tiny_config()),
                   next_sentence_prediction=False).save_weights(file)
    with weights_set_after():
        classifier = BertClassifier(BertEncoder(tiny_config()), num_classes=2)
    with pytest.raises(ValueError, match="could not be loaded"):
        classifier.load_weights(file)


class _Nested(keras.layers.Layer):
    """Sublayers inside a container: what Keras' one lenient load path is about."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.parts = {"a": [keras.layers.Dense(2), keras.layers.Dense(2)]}

    def call(self, x):
        for layer in self.parts["a"]:
            x = layer(x)
        return x


def test_a_file_without_a_nested_containers_group_loads_in_keras_but_not_here(tmp_path):
    import h5py

    from keras_bert_app.layers.initializers import IncompleteWeights, load_every_weight

    def model():
        return keras.Sequential([keras.Input([2]), _Nested(name="nested")])

    file = str(tmp_path / "old.weights.h5")
    model().save_weights(file)
    with h5py.File(file, "a") as f:  # as Keras versions before nested groups wrote it
        groups = []
        f.visit(lambda name: groups.append(name) if name.endswith("parts/container")
                else None)
        assert len(groups) == 1, groups
        del f[groups[0]]
    with pytest.warns(UserWarning, match="Skipping nested container"):
        model().load_weights(file)  # Keras: loads, the sublayers keep their values
    with pytest.raises(ValueError, match="does not hold every weight of Sequential: "
                                         "Skipping nested container") as error:
        load_every_weight(model(), file)
    # The file and what it lacks, apart (a resume's message names the file once).
    assert isinstance(error.value, IncompleteWeights) and error.value.path == file
    assert error.value.reason.startswith("does not hold every weight of Sequential")


def test_a_file_of_another_model_is_keras_own_error_naming_the_layer(tmp_path):
    """Keras warns about nested containers on its way to a real mismatch's error:
    that error (which layer, how many values) is what the caller gets."""
    from keras_bert_app.layers.initializers import load_every_weight
    from keras_bert_app.models import BertClassifier, BertEncoder

    file = str(tmp_path / "three.weights.h5")
    BertClassifier(BertEncoder(tiny_config()), num_classes=3).save_weights(file)
    with weights_set_after():
        two = BertClassifier(BertEncoder(tiny_config()), num_classes=2)
    with pytest.raises(ValueError) as error:
        load_every_weight(two, file)
    assert "Skipping nested container" not in str(error.value)
    assert "shape" in str(error.value).lower() or "could not be loaded" in str(error.value)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
