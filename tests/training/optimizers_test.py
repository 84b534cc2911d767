"""create_optimizer: Google's schedule, weight decay exclusions (also after a `.keras`
round trip), clipping, accumulation, and LAMB against a NumPy reference."""

import sys

import keras
import numpy as np
import pytest

from keras_bert_app import names
from keras_bert_app.models import BertEncoder, BertPretrainer
from keras_bert_app.training import WarmupLinearDecay, create_optimizer
from keras_bert_app.training.optimizers import AdamW, Lamb
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


def zero_gradient_step(model, optimizer):
    """(names of the weights one step with zero gradients changes, of those it
    keeps): Adam and LAMB move nothing on zero gradients, so any change is the weight
    decay. Every weight is set non-zero first (decay cannot move a zero bias)."""
    rng = np.random.default_rng(0)
    for v in model.trainable_variables:
        v.assign(rng.uniform(0.5, 1.5, v.shape).astype(v.dtype))
    before = {v.path: keras.ops.convert_to_numpy(v).copy() for v in model.trainable_variables}
    optimizer.apply_gradients([(keras.ops.zeros(v.shape, v.dtype), v)
                               for v in model.trainable_variables])
    decayed, spared = set(), set()
    for v in model.trainable_variables:
        after = keras.ops.convert_to_numpy(v)
        (spared if np.array_equal(after, before[v.path]) else decayed).add(v.name)
    return decayed, spared


def assert_layer_norm_and_biases_spared(decayed, spared):
    assert spared <= {"gamma", "beta", "bias", "output_bias"}
    assert {"gamma", "beta", "bias"} <= spared
    assert {"kernel", "embeddings", "position_embeddings"} <= decayed


def test_weight_decay_spares_layer_norm_and_biases():
    model = BertPretrainer(BertEncoder(tiny_config()))
    optimizer = create_optimizer(1e-2, num_train_steps=10, weight_decay=0.1)
    optimizer.build(model.trainable_variables)
    assert_layer_norm_and_biases_spared(*zero_gradient_step(model, optimizer))


@pytest.mark.parametrize("name", ["adamw", "lamb"])
def test_exclusions_survive_a_keras_file_round_trip(name, tmp_path):
    model = BertPretrainer(BertEncoder(tiny_config()))
    model.compile(optimizer=create_optimizer(1e-2, num_train_steps=10, optimizer=name,
                                             weight_decay=0.1))
    model.optimizer.build(model.trainable_variables)
    model.save(tmp_path / "pretrainer.keras")
    loaded = keras.saving.load_model(tmp_path / "pretrainer.keras", safe_mode=True)
    assert type(loaded.optimizer) is type(model.optimizer)
    assert loaded.optimizer.get_config()["exclude_from_weight_decay"] == \
        ["gamma", "beta", "bias"]
    assert_layer_norm_and_biases_spared(*zero_gradient_step(loaded, loaded.optimizer))


def test_clipping_accumulation_and_lamb():
    adamw = create_optimizer(1e-4, 100, 10, gradient_accumulation_steps=4)
    assert isinstance(adamw, keras.optimizers.AdamW)
    assert adamw.global_clipnorm == 1.0 and adamw.gradient_accumulation_steps == 4
    assert adamw.weight_decay == 0.01 and adamw.epsilon == 1e-6
    lamb = create_optimizer(1e-4, 100, optimizer="lamb")
    assert isinstance(lamb, keras.optimizers.Lamb)
    # LAMB shares AdamW's clipping of the cross-replica sum (checked under `mirrored`
    # for AdamW by gradient_accumulation_test.py); its own code is update_step only.
    for hook in ("_clip_gradients", "_all_reduce_sum_gradients",
                 "_backend_apply_gradients"):
        assert getattr(type(lamb), hook) is getattr(AdamW, hook)
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


def np_lamb(weights, gradient_steps, lr, weight_decay, clipnorm, no_decay, no_adaptation,
            beta_1=0.9, beta_2=0.999, epsilon=1e-6):
    """LAMB as the paper and Model Garden define it, in float64, after clipping the
    gradients to global norm `clipnorm`."""
    weights = {k: w.astype("float64") for k, w in weights.items()}
    m = {k: np.zeros_like(w) for k, w in weights.items()}
    v = {k: np.zeros_like(w) for k, w in weights.items()}
    for t, grads in enumerate(gradient_steps, start=1):
        norm = np.sqrt(sum(np.sum(np.square(g.astype("float64"))) for g in grads.values()))
        for k, w in weights.items():
            g = grads[k] * clipnorm / max(norm, clipnorm)
            m[k] = beta_1 * m[k] + (1 - beta_1) * g
            v[k] = beta_2 * v[k] + (1 - beta_2) * g * g
            r = (m[k] / (1 - beta_1 ** t)) / (np.sqrt(v[k] / (1 - beta_2 ** t)) + epsilon)
            if k not in no_decay:
                r = r + weight_decay * w
            ratio = 1.0
            w_norm, r_norm = np.linalg.norm(w), np.linalg.norm(r)
            if k not in no_adaptation and w_norm > 0 and r_norm > 0:
                ratio = w_norm / r_norm
            weights[k] = w - lr * ratio * r
    return weights


@pytest.mark.parametrize("steps", [1, 2])
@pytest.mark.parametrize("no_adaptation", [None, ["bias"]])
def test_lamb_matches_the_paper_and_model_garden(steps, no_adaptation):
    rng = np.random.default_rng(5)
    initial = {"kernel": rng.normal(size=(4, 3)).astype("float32"),
               "bias": rng.normal(size=(3,)).astype("float32"),
               "gamma": (1 + 0.1 * rng.normal(size=(3,))).astype("float32")}
    # The first step's global norm is above the clip norm, the second's below.
    gradient_steps = [{k: (scale * rng.normal(size=w.shape)).astype("float32")
                       for k, w in initial.items()} for scale in (2.0, 0.1)][:steps]
    optimizer = Lamb(learning_rate=0.05, weight_decay=0.1, epsilon=1e-6,
                     global_clipnorm=1.0, exclude_from_weight_decay=["gamma", "bias"],
                     exclude_from_layer_adaptation=no_adaptation)
    optimizer = Lamb.from_config(optimizer.get_config())
    variables = [keras.Variable(w, name=k) for k, w in initial.items()]
    for grads in gradient_steps:
        optimizer.apply([keras.ops.convert_to_tensor(grads[v.name]) for v in variables],
                        variables)

    expected = np_lamb(initial, gradient_steps, lr=0.05, weight_decay=0.1, clipnorm=1.0,
                       no_decay={"gamma", "bias"},
                       no_adaptation=set(no_adaptation or ["gamma", "bias"]))
    for v in variables:
        np.testing.assert_allclose(keras.ops.convert_to_numpy(v), expected[v.name],
                                   rtol=1e-6, atol=0, err_msg=v.name)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
