"""Models build, train and predict under mixed_bfloat16 and mixed_float16.

Matmuls run in the half-precision compute dtype; LayerNorm, the attention softmax and
the returned logits stay float32.
"""

import sys

import keras
import numpy as np
import pytest

from keras_bert_app import names
from keras_bert_app.models import (BertClassifier, BertEncoder, BertMultipleChoice,
                                   BertPretrainer, BertSpanLabeler, BertTokenClassifier)
from tests.helpers import encoder_batch, tiny_config, to_numpy

POLICIES = {"mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}


@pytest.fixture(params=sorted(POLICIES))
def policy(request):
    keras.config.set_dtype_policy(request.param)
    yield request.param
    keras.config.set_dtype_policy("float32")


def dtype_of(x):
    return keras.backend.standardize_dtype(x.dtype)


def all_layers(model):
    return model._flatten_layers(include_self=False, recursive=True)


def test_layer_norms_are_float32_and_matmuls_half_precision(policy):
    encoder = BertEncoder(tiny_config())
    pretrainer = BertPretrainer(encoder)
    layers = list(all_layers(pretrainer))
    norms = [l for l in layers if isinstance(l, keras.layers.LayerNormalization)]
    dense = [l for l in layers if isinstance(l, keras.layers.Dense)
             and l.name not in ("nsp_head",)]
    assert len(norms) == 1 + 2 * 2 + 1  # embeddings, 2 per block, MLM transform
    assert {l.compute_dtype for l in norms} == {"float32"}
    assert {l.compute_dtype for l in dense} == {POLICIES[policy]}
    assert {v.dtype for v in pretrainer.weights} == {"float32"}  # master weights


def test_pretrainer_trains_and_returns_float32_logits(policy):
    keras.utils.set_random_seed(0)
    pretrainer = BertPretrainer(BertEncoder(tiny_config()))
    pretrainer.compile(optimizer=keras.optimizers.Adam(3e-3))
    if policy == "mixed_float16":
        assert isinstance(pretrainer.optimizer, keras.optimizers.LossScaleOptimizer)
    x = encoder_batch(batch=8, seq=10, lengths=[10] * 8)
    x[names.MASKED_LM_POSITIONS] = np.tile(np.array([[1, 4, 7]], "int32"), (8, 1))
    y = {names.MASKED_LM_IDS: x[names.INPUT_WORD_IDS][:, [1, 4, 7]],
         names.MASKED_LM_WEIGHTS: np.ones((8, 3), "float32"),
         names.NEXT_SENTENCE_LABELS: np.arange(8)[:, None] % 2}
    history = pretrainer.fit(x, y, epochs=15, verbose=0).history
    assert np.isfinite(history["loss"]).all()
    assert history["loss"][-1] < history["loss"][0]
    out = pretrainer.predict(x, verbose=0)
    assert out[names.MLM_LOGITS].dtype == np.float32
    assert out[names.NSP_LOGITS].dtype == np.float32


def test_encoder_and_classifier_outputs(policy):
    encoder = BertEncoder(tiny_config())
    classifier = BertClassifier(encoder, num_classes=3)
    batch = encoder_batch()
    out = encoder(batch)
    # LayerNorm closes every block, so the sequence output is float32 too.
    assert dtype_of(out[names.SEQUENCE_OUTPUT]) == "float32"
    assert dtype_of(classifier(batch)) == "float32"
    classifier.compile(optimizer="adam")
    history = classifier.fit(batch, np.array([0, 1, 2]), epochs=2, verbose=0).history
    assert np.isfinite(history["loss"]).all()


@pytest.mark.parametrize("policy_name", sorted(POLICIES))
def test_models_keep_their_policy_without_a_global_one(policy_name):
    """The pipelines build `BertEncoder(config, dtype=...)` under the global float32
    policy; `compile` must still see the mixed policy, or mixed_float16 trains
    without loss scaling."""
    assert keras.config.dtype_policy().name == "float32"
    encoder = BertEncoder(tiny_config(), dtype=policy_name)
    models = [encoder, BertPretrainer(encoder), BertClassifier(encoder, num_classes=2),
              BertSpanLabeler(encoder), BertTokenClassifier(encoder, num_classes=3),
              BertMultipleChoice(encoder)]
    assert [m.dtype_policy.name for m in models] == [policy_name] * len(models)
    for model in models[1:]:
        model.compile(optimizer=keras.optimizers.AdamW(1e-3))
        scaled = isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        assert scaled == (policy_name == "mixed_float16"), type(model).__name__


def test_keras_functional_models_still_drop_their_dtype_argument():
    """Pins the Keras behaviour `keep_model_dtype_policy` works around: when this
    fails, Keras keeps a functional model's `dtype` and the workaround can go."""
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs), dtype="mixed_float16")
    assert model.dtype_policy.name == "float32"


def test_mixed_outputs_stay_close_to_float32(policy):
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(4)
    full = BertEncoder(tiny_config())
    keras.config.set_dtype_policy(policy)
    half = BertEncoder(tiny_config())
    half.set_weights(full.get_weights())
    batch = encoder_batch()
    a = to_numpy(full(batch))[names.SEQUENCE_OUTPUT]
    b = to_numpy(half(batch))[names.SEQUENCE_OUTPUT].astype("float32")
    # bfloat16 keeps 8 mantissa bits, float16 11; LayerNorm outputs are O(1).
    assert np.abs(a - b).max() < (0.1 if policy == "mixed_bfloat16" else 0.02)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
