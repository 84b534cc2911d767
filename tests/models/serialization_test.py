"""Every model saves to `.keras` and loads back with safe_mode=True, same outputs."""

import sys

import keras
import numpy as np
import pytest

from keras_bert_app import names
from keras_bert_app.models import (BertClassifier, BertEncoder, BertMultipleChoice,
                                   BertPretrainer, BertSpanLabeler, BertTokenClassifier)
from tests.helpers import assert_trees_equal, encoder_batch, tiny_config, to_numpy


def pretraining_inputs():
    x = encoder_batch()
    x[names.MASKED_LM_POSITIONS] = np.array([[1, 2], [3, 4], [0, 5]], "int32")
    return x


def choice_inputs():
    return {k: v.reshape(1, 3, -1) for k, v in encoder_batch().items()}


def encoder(config):
    return BertEncoder(config)


CASES = {
    "encoder": (encoder, encoder_batch),
    "pretrainer": (lambda c: BertPretrainer(BertEncoder(c)), pretraining_inputs),
    "mlm_only": (lambda c: BertPretrainer(BertEncoder(c), next_sentence_prediction=False),
                 pretraining_inputs),
    "classifier": (lambda c: BertClassifier(BertEncoder(c), num_classes=3, dropout=0.2),
                   encoder_batch),
    "regressor": (lambda c: BertClassifier(BertEncoder(c), num_classes=1), encoder_batch),
    "span_labeler": (lambda c: BertSpanLabeler(BertEncoder(c)), encoder_batch),
    "token_classifier": (lambda c: BertTokenClassifier(BertEncoder(c), num_classes=4),
                         encoder_batch),
    "multiple_choice": (lambda c: BertMultipleChoice(BertEncoder(c)), choice_inputs),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("albert", [False, True])
def test_keras_file_round_trip(tmp_path, case, albert):
    build, inputs = CASES[case]
    config = tiny_config(embedding_size=8, share_layers=True) if albert else tiny_config()
    model = build(config)
    model.compile(optimizer="adam")
    x = inputs()
    before = to_numpy(model.predict(x, verbose=0))
    path = tmp_path / f"{case}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded) is type(model)
    assert loaded.get_config() == model.get_config()
    after = to_numpy(loaded.predict(x, verbose=0))
    assert_trees_equal(before, after)


def test_loaded_pretrainer_keeps_training(tmp_path):
    model = BertPretrainer(BertEncoder(tiny_config()))
    model.compile(optimizer="adam")
    model.save(tmp_path / "p.keras")
    loaded = keras.saving.load_model(tmp_path / "p.keras")
    x = pretraining_inputs()
    y = {names.MASKED_LM_IDS: np.ones((3, 2), "int32"),
         names.MASKED_LM_WEIGHTS: np.ones((3, 2), "float32"),
         names.NEXT_SENTENCE_LABELS: np.zeros((3, 1), "int32")}
    history = loaded.fit(x, y, epochs=2, verbose=0).history
    assert np.isfinite(history["loss"]).all()
    # The tie survives loading: the MLM head reads the encoder's word table.
    assert loaded.mlm_head.embedding is loaded.encoder.token_embedding


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
