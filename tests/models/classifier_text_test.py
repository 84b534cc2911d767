"""BertClassifier on raw text: `from_model_dir` builds encoder + head + preprocessor,
`fit` / `evaluate` / `predict` take strings and pairs on every backend, the README's
example runs as printed (with the real MiniLM, on TensorFlow), and `.keras` files keep
the preprocessor."""

import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_bert_app import names
from keras_bert_app.model_dir import save_model_dir
from keras_bert_app.models import BertClassifier, BertEncoder, BertPretrainer
from keras_bert_app.text.text_config import TextConfig
from tests.helpers import SHAKESPEARE_VOCAB, tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Separable by one word: a model that learns anything gets them right.
POSITIVE = ["the king is good", "a good lord", "good night sweet prince", "so good"]
NEGATIVE = ["the king is dead", "a dead lord", "dead of night, dead prince", "so dead"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pretrained")
    keras.utils.set_random_seed(0)
    pretrainer = BertPretrainer(BertEncoder(tiny_config(vocab_size=927)))
    save_model_dir(directory, pretrainer, SHAKESPEARE_VOCAB,
                   TextConfig.for_vocab(SHAKESPEARE_VOCAB, True))
    return str(directory)


def test_fit_on_strings_learns_and_predicts(model_dir):
    keras.utils.set_random_seed(1)
    classifier = BertClassifier.from_model_dir(model_dir, num_classes=2, sequence_length=32)
    assert classifier.preprocessor.dynamic_padding
    classifier.compile(keras.optimizers.Adam(3e-3))
    texts, labels = POSITIVE + NEGATIVE, np.array([1] * 4 + [0] * 4)
    history = classifier.fit(texts, labels, batch_size=4, epochs=15, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0] / 2
    predicted = classifier.predict(texts, verbose=0).argmax(-1)
    assert predicted.tolist() == labels.tolist()  # label 1 stays "good"
    results = classifier.evaluate(texts, labels, verbose=0, return_dict=True)
    assert results["accuracy"] == 1.0


def test_pairs_and_regression_take_tuples_and_dicts(model_dir):
    regressor = BertClassifier.from_model_dir(model_dir, num_classes=1, sequence_length=32)
    regressor.compile(keras.optimizers.Adam(1e-3))
    a, b = POSITIVE, NEGATIVE
    regressor.fit((a, b), np.array([0.5, 1.0, 2.0, 4.5]), batch_size=2, epochs=1, verbose=0)
    by_tuple = regressor.predict((a, b), verbose=0)
    by_dict = regressor.predict({names.TEXT_A: a, names.TEXT_B: b}, verbose=0)
    assert by_tuple.shape == (4, 1)
    np.testing.assert_allclose(by_tuple, by_dict, atol=1e-6)
    swapped = regressor.predict((b, a), verbose=0)
    assert not np.allclose(by_tuple, swapped)  # text_b is not ignored


def test_multi_label_uses_sigmoid_cross_entropy(model_dir):
    tagger = BertClassifier.from_model_dir(model_dir, num_classes=3, multi_label=True,
                                           sequence_length=16)
    tagger.compile(keras.optimizers.Adam(1e-3))
    assert isinstance(tagger.loss, keras.losses.BinaryCrossentropy)
    tagger.fit(POSITIVE, np.array([[1, 0, 1]] * 4, "float32"), batch_size=2, verbose=0)


def test_keras_file_keeps_the_preprocessor(model_dir, tmp_path):
    classifier = BertClassifier.from_model_dir(model_dir, num_classes=2, sequence_length=24)
    path = str(tmp_path / "classifier.keras")
    classifier.save(path)
    restored = keras.saving.load_model(path)
    assert restored.preprocessor.sequence_length == 24
    assert restored.preprocessor.vocabulary == classifier.preprocessor.vocabulary
    np.testing.assert_allclose(restored.predict(POSITIVE, verbose=0),
                               classifier.predict(POSITIVE, verbose=0), atol=1e-5)


def test_a_classifier_fitted_in_a_script_saves_as_a_model_directory(model_dir, tmp_path):
    import keras_bert_app as kba

    classifier = BertClassifier.from_model_dir(model_dir, num_classes=2, sequence_length=24)
    classifier.compile(keras.optimizers.Adam(1e-3))
    classifier.fit((POSITIVE, NEGATIVE), np.array([1, 0, 1, 0]), batch_size=2, verbose=0)
    kba.save_classifier(str(tmp_path / "fine_tuned"), classifier,
                        label_names=["different", "same"], pairs=True)
    task = kba.model_dir.read_task_config(str(tmp_path / "fine_tuned"))
    assert (task.label_names, task.max_seq_length, task.text_inputs) == (
        ("different", "same"), 24, names.TEXT_INPUTS)
    restored = kba.load_classifier(str(tmp_path / "fine_tuned"))
    np.testing.assert_allclose(restored.predict((POSITIVE, NEGATIVE), verbose=0),
                               classifier.predict((POSITIVE, NEGATIVE), verbose=0),
                               atol=1e-5)
    with pytest.raises(ValueError, match="3 label names for 2 classes"):
        kba.save_classifier(str(tmp_path / "x"), classifier, label_names=["a", "b", "c"])


def test_text_inputs_of_another_shape_are_refused(model_dir):
    classifier = BertClassifier.from_model_dir(model_dir, num_classes=2, sequence_length=16)
    with pytest.raises(ValueError, match=r"string vectors \[batch\]; got shape"):
        classifier.predict(np.array([POSITIVE, NEGATIVE], object).T, verbose=0)
    import tensorflow as tf

    pairs = tf.data.Dataset.from_tensor_slices((POSITIVE, NEGATIVE)).batch(2)
    with pytest.raises(ValueError, match="second texts would be labels"):
        classifier.predict(pairs, verbose=0)
    as_dict = tf.data.Dataset.from_tensor_slices(
        {names.TEXT_A: POSITIVE, names.TEXT_B: NEGATIVE}).batch(2)
    assert classifier.predict(as_dict, verbose=0).shape == (4, 2)


def test_a_pretrained_directory_needs_num_classes(model_dir):
    with pytest.raises(ValueError, match="num_classes"):
        BertClassifier.from_model_dir(model_dir)


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="the README's block runs verbatim on the TensorFlow backend; on JAX and torch "
           "the tests above make the same calls (from_model_dir, fit, evaluate and "
           "predict on strings) with a tiny model; MiniLM's run there cost 14-27 s a "
           "backend in CI")
def test_the_readme_example_runs_as_printed(minilm_dir, tmp_path):
    """The README's fit-on-strings block, run verbatim in a fresh interpreter, with
    the real MiniLM model converted (tests/conftest.py) to the path the README
    imports it to."""
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    block = re.search(r"<!-- readme-example: fit-on-strings[^>]*-->\s*```python\n(.*?)```",
                      readme, re.S)
    assert block, "README.md lost its fit-on-strings example"
    code = block.group(1)
    assert len(code.strip().splitlines()) <= 12
    converted = minilm_dir
    # Under Bazel, PYTHONPATH is also how the interpreter finds the virtualenv.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]))
    assert '"/tmp/kba/minilm"' in code
    result = subprocess.run([sys.executable, "-c", code.replace('"/tmp/kba/minilm"',
                                                                repr(str(converted)))],
                            cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    printed = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"\[[01] [01]\]", printed), printed


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
