"""create_optimizer: Google's schedule, weight decay exclusions, clipping, accumulation."""

import sys

import keras
import numpy as np
import pytest

from keras_bert_app import names
from keras_bert_app.models import BertEncoder, BertPretrainer
from keras_bert_app.training import WarmupLinearDecay, create_optimizer
from tests.helpers import encoder_batch, tiny_config


def test_schedule_warms_up_then_decays_linearly_from_step_zero():
    schedule = WarmupLinearDecay(1e-3, num_train_steps=1000, num_warmup_steps=100)
    values = {step: float(schedule(step)) for step in (0, 50, 99, 100, 500, 1000, 2000)}
    assert values[0] == 0.0
    assert values[50] == pytest.approx(5e-4)
    assert values[99] == pytest.approx(9.9e-4)
    # Google's optimization.py: the decay counts from step 0, so at the end of warmup
    # the rate is already 10% below the peak.
    assert values[100] == pytest.approx(9e-4)
    assert values[500] == pytest.approx(5e-4)
    assert values[1000] == 0.0 and values[2000] == 0.0
    clone = WarmupLinearDecay.from_config(schedule.get_config())
    assert float(clone(300)) == pytest.approx(float(schedule(300)))


def test_weight_decay_spares_layer_norm_and_biases():
    model = BertPretrainer(BertEncoder(tiny_config()))
    optimizer = create_optimizer(1e-2, num_train_steps=10, weight_decay=0.1)
    optimizer.build(model.trainable_variables)
    before = {v.path: keras.ops.convert_to_numpy(v).copy() for v in model.trainable_variables}
    # Zero gradients: Adam moves nothing, so any change is the decoupled decay.
    optimizer.apply_gradients([(keras.ops.zeros(v.shape, v.dtype), v)
                               for v in model.trainable_variables])
    decayed, spared = [], []
    for v in model.trainable_variables:
        after = keras.ops.convert_to_numpy(v)
        (spared if np.array_equal(after, before[v.path]) else decayed).append(v.name)
    assert set(spared) <= {"gamma", "beta", "bias", "output_bias"}
    assert {"gamma", "beta", "bias"} <= set(spared)
    assert {"kernel", "embeddings", "position_embeddings"} <= set(decayed)


def test_clipping_accumulation_and_lamb():
    adamw = create_optimizer(1e-4, 100, 10, gradient_accumulation_steps=4)
    assert isinstance(adamw, keras.optimizers.AdamW)
    assert adamw.global_clipnorm == 1.0 and adamw.gradient_accumulation_steps == 4
    assert adamw.weight_decay == 0.01 and adamw.epsilon == 1e-6
    assert isinstance(create_optimizer(1e-4, 100, optimizer="lamb"), keras.optimizers.Lamb)
    with pytest.raises(ValueError, match="Unknown optimizer 'sgd'"):
        create_optimizer(1e-4, 100, optimizer="sgd")


def test_pretrainer_trains_with_it():
    keras.utils.set_random_seed(3)
    model = BertPretrainer(BertEncoder(tiny_config(hidden_dropout_prob=0.0,
                                                   attention_probs_dropout_prob=0.0)))
    model.compile(optimizer=create_optimizer(5e-3, num_train_steps=40, num_warmup_steps=4))
    x = encoder_batch(batch=8, seq=10, lengths=[10] * 8)
    x[names.MASKED_LM_POSITIONS] = np.tile(np.array([[1, 4, 7]], "int32"), (8, 1))
    y = {names.MASKED_LM_IDS: x[names.INPUT_WORD_IDS][:, [1, 4, 7]],
         names.MASKED_LM_WEIGHTS: np.ones((8, 3), "float32"),
         names.NEXT_SENTENCE_LABELS: np.arange(8) % 2}
    history = model.fit(x, y, epochs=40, verbose=0).history
    assert history["loss"][-1] < 0.5 * history["loss"][0]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
