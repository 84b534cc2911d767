"""BertPretrainer: MLM + NSP outputs, built-in loss and metrics, training with fit."""

import sys

import keras
import numpy as np
import pytest

from keras_bert_app import names
from keras_bert_app.models import BertEncoder, BertPretrainer
from tests.encoder_params import expected_parameter_count
from tests.helpers import TINY_VOCAB, encoder_batch, np_log_softmax, tiny_config, to_numpy


def pretraining_batch(batch=4, seq=12, predictions=3, seed=0):
    rng = np.random.default_rng(seed)
    x = encoder_batch(batch=batch, seq=seq, lengths=[seq] * batch, seed=seed)
    x[names.MASKED_LM_POSITIONS] = np.stack(
        [rng.choice(np.arange(1, seq), predictions, replace=False)
         for _ in range(batch)]).astype("int32")
    y = {
        names.MASKED_LM_IDS: rng.integers(1, TINY_VOCAB, (batch, predictions)).astype("int32"),
        names.MASKED_LM_WEIGHTS: np.ones((batch, predictions), "float32"),
        names.NEXT_SENTENCE_LABELS: rng.integers(0, 2, (batch, 1)).astype("int32"),
    }
    return x, y


def make_pretrainer(**kwargs):
    keras.utils.set_random_seed(1)
    encoder = BertEncoder(tiny_config(hidden_dropout_prob=0.0,
                                      attention_probs_dropout_prob=0.0))
    return BertPretrainer(encoder, **kwargs)


def test_outputs_and_shapes():
    model = make_pretrainer()
    x, _ = pretraining_batch(batch=2, predictions=5)
    out = to_numpy(model(x))
    assert out[names.MLM_LOGITS].shape == (2, 5, TINY_VOCAB)
    assert out[names.NSP_LOGITS].shape == (2, 2)
    assert out[names.MLM_LOGITS].dtype == np.float32


def test_mlm_output_is_tied_to_the_word_embeddings():
    model = make_pretrainer()
    config = model.encoder.config
    extra = (config.hidden_size * config.hidden_size + config.hidden_size  # transform
             + 2 * config.hidden_size                                       # LayerNorm
             + config.vocab_size                                            # output bias
             + config.hidden_size * 2 + 2)                                  # NSP
    assert model.count_params() == expected_parameter_count(config) + extra
    assert model.mlm_head.embedding is model.encoder.token_embedding


def test_loss_and_metrics_equal_a_numpy_computation():
    model = make_pretrainer()
    model.compile(optimizer="adam")
    x, y = pretraining_batch(batch=4, predictions=4, seed=3)
    logits = to_numpy(model.predict(x, verbose=0))
    mlm, nsp = logits[names.MLM_LOGITS], logits[names.NSP_LOGITS]
    # Labels that the model gets right at known places, so accuracies are not trivial.
    predicted = mlm.argmax(-1)
    ids = np.where(np.arange(4)[None, :] % 2 == 0, predicted, (predicted + 1) % TINY_VOCAB)
    weights = np.array([[1, 1, 1, 0], [1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1]], "float32")
    nsp_labels = np.array([[nsp[0].argmax()], [1 - nsp[1].argmax()],
                           [nsp[2].argmax()], [nsp[3].argmax()]], "int32")
    y = {names.MASKED_LM_IDS: ids.astype("int32"), names.MASKED_LM_WEIGHTS: weights,
         names.NEXT_SENTENCE_LABELS: nsp_labels}

    mlm_ce = -np.take_along_axis(np_log_softmax(mlm), ids[..., None], -1)[..., 0]
    mlm_loss = (mlm_ce * weights).sum() / weights.sum()
    mlm_acc = ((predicted == ids) * weights).sum() / weights.sum()
    nsp_ce = -np_log_softmax(nsp)[np.arange(4), nsp_labels[:, 0]]
    nsp_acc = (nsp.argmax(-1) == nsp_labels[:, 0]).mean()
    assert 0 < mlm_acc < 1 and nsp_acc == 0.75

    result = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    np.testing.assert_allclose(result["masked_lm_loss"], mlm_loss, rtol=1e-5)
    np.testing.assert_allclose(result["masked_lm_accuracy"], mlm_acc, rtol=1e-6)
    np.testing.assert_allclose(result["next_sentence_loss"], nsp_ce.mean(), rtol=1e-5)
    np.testing.assert_allclose(result["next_sentence_accuracy"], nsp_acc, rtol=1e-6)
    np.testing.assert_allclose(result["loss"], mlm_loss + nsp_ce.mean(), rtol=1e-5)


def test_evaluate_to_the_end_of_a_dataset_averages_as_google_does():
    """Over several batches: masked-LM loss is the mean over masked positions
    (weights), next-sentence loss the mean over examples; no phantom batch when
    `evaluate` runs until the dataset ends (Keras' TF step stops on an exhausted
    iterator after data-independent metric updates would already have run)."""
    import tensorflow as tf

    model = make_pretrainer()
    model.compile(optimizer="adam")
    batches = [pretraining_batch(batch=4, predictions=3, seed=s) for s in (11, 12)]
    batches[1][1][names.MASKED_LM_WEIGHTS][:, 1:] = 0.0  # fewer positions in batch 2
    ce_sum = weight_sum = 0.0
    nsp_ces = []
    for x, y in batches:
        out = to_numpy(model.predict(x, verbose=0))
        ids, weights = y[names.MASKED_LM_IDS], y[names.MASKED_LM_WEIGHTS]
        ce = -np.take_along_axis(np_log_softmax(out[names.MLM_LOGITS]), ids[..., None],
                                 -1)[..., 0]
        ce_sum += (ce * weights).sum()
        weight_sum += weights.sum()
        labels = np.reshape(y[names.NEXT_SENTENCE_LABELS], (-1,))
        nsp_ces.extend(-np_log_softmax(out[names.NSP_LOGITS])[np.arange(4), labels])

    def stream():
        for x, y in batches:
            yield x, y

    x0, y0 = batches[0]
    spec = tuple({k: tf.TensorSpec((None,) + v.shape[1:], tf.as_dtype(v.dtype))
                  for k, v in part.items()} for part in (x0, y0))
    dataset = tf.data.Dataset.from_generator(stream, output_signature=spec)
    result = model.evaluate(dataset, verbose=0, return_dict=True)
    np.testing.assert_allclose(result["masked_lm_loss"], ce_sum / weight_sum, rtol=1e-5)
    np.testing.assert_allclose(result["next_sentence_loss"], np.mean(nsp_ces), rtol=1e-5)


def test_fit_reduces_the_loss_and_raises_accuracy():
    model = make_pretrainer()
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    x, y = pretraining_batch(batch=8, predictions=3, seed=5)
    history = model.fit(x, y, batch_size=8, epochs=25, verbose=0).history
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert history["masked_lm_accuracy"][-1] > history["masked_lm_accuracy"][0] + 0.5
    assert set(history) == {"loss", "masked_lm_loss", "masked_lm_accuracy",
                            "next_sentence_loss", "next_sentence_accuracy"}


def test_next_sentence_labels_may_be_flat():
    model = make_pretrainer()
    model.compile(optimizer="adam")
    x, y = pretraining_batch(seed=6)
    as_column = model.evaluate(x, y, verbose=0, return_dict=True)
    y[names.NEXT_SENTENCE_LABELS] = y[names.NEXT_SENTENCE_LABELS][:, 0]
    flat = model.evaluate(x, y, verbose=0, return_dict=True)
    assert as_column == pytest.approx(flat)


def test_masked_lm_only():
    model = make_pretrainer(next_sentence_prediction=False)
    model.compile(optimizer="adam")
    x, y = pretraining_batch(seed=7)
    assert set(to_numpy(model(x))) == {names.MLM_LOGITS}
    result = model.evaluate(x, y, verbose=0, return_dict=True)
    assert set(result) == {"loss", "masked_lm_loss", "masked_lm_accuracy"}
    assert result["loss"] == pytest.approx(result["masked_lm_loss"], rel=1e-6)


def test_loss_cannot_be_replaced_and_labels_are_required():
    model = make_pretrainer()
    with pytest.raises(ValueError, match="`loss` cannot be set"):
        model.compile(optimizer="adam", loss="mse")
    model.compile(optimizer="adam")
    x, _ = pretraining_batch()
    with pytest.raises(ValueError, match="BertPretrainer needs labels"):
        model.fit(x, x[names.MASKED_LM_POSITIONS], verbose=0)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
