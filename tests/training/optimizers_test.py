"""create_optimizer: Google's schedule, weight decay exclusions (also after a `.keras`
round trip), clipping, accumulation, and AdamW (fused on TensorFlow) and LAMB against
NumPy references."""

import re
import sys

import keras
import numpy as np
import pytest

from keras_bert_app import names
from keras_bert_app.models import BertEncoder, BertPretrainer
from keras_bert_app.training import WarmupLinearDecay, create_optimizer
from keras_bert_app.training.optimizers import NO_WEIGHT_DECAY, AdamW, Lamb
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



def np_adamw(weights, gradient_steps, learning_rates, weight_decay, clipnorm, decayed,
             beta_1=0.9, beta_2=0.999, epsilon=1e-6):
    """AdamW as Keras defines it (Loshchilov & Hutter's decoupled decay, applied before
    the bias-corrected Adam step), after clipping to the global norm."""
    weights = [w.astype(np.float64) for w in weights]
    m = [np.zeros_like(w) for w in weights]
    v = [np.zeros_like(w) for w in weights]
    for t, (grads, lr) in enumerate(zip(gradient_steps, learning_rates), start=1):
        norm = np.sqrt(sum(np.sum(np.square(g, dtype=np.float64)) for g in grads))
        grads = [g * clipnorm / max(norm, clipnorm) for g in grads]
        alpha = lr * np.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
        for i, g in enumerate(grads):
            if decayed[i]:
                weights[i] = weights[i] - weights[i] * weight_decay * lr
            m[i] = beta_1 * m[i] + (1 - beta_1) * g
            v[i] = beta_2 * v[i] + (1 - beta_2) * np.square(g)
            weights[i] = weights[i] - alpha * m[i] / (np.sqrt(v[i]) + epsilon)
    return weights


def adamw_case(seed=4):
    """A tiny classifier's variables, three steps of random gradients, and the
    settings of BERT's AdamW (decay 0.1, clipping at 1, linear decay of the rate)."""
    from keras_bert_app.models import BertClassifier

    keras.utils.set_random_seed(seed)
    model = BertClassifier(BertEncoder(tiny_config()), num_classes=3)
    rng = np.random.default_rng(seed)
    steps = [[rng.normal(0, 0.5, v.shape).astype("float32")
              for v in model.trainable_variables] for _ in range(3)]
    return model, steps


def run_adamw(model, steps, graph):
    """Our AdamW's three steps on `model`; in a traced function when `graph`.
    Returns the learning rates of the steps."""
    optimizer = create_optimizer(1e-2, num_train_steps=10, weight_decay=0.1)
    optimizer.build(model.trainable_variables)
    rates = []
    for grads in steps:
        rates.append(float(keras.ops.convert_to_numpy(optimizer.learning_rate)))
        grads = [keras.ops.convert_to_tensor(g) for g in grads]  # the backend's tensors
        apply = lambda g: optimizer.apply(g, model.trainable_variables)  # noqa: E731
        if graph:
            import tensorflow as tf

            tf.function(apply, autograph=False)(grads)
        else:
            apply(grads)
    return optimizer, rates


@pytest.mark.parametrize("graph", [True, False])
def test_adamw_matches_the_decoupled_weight_decay_reference(graph):
    if graph and keras.backend.backend() != "tensorflow":
        pytest.skip("traced functions here are TensorFlow's")
    model, steps = adamw_case()
    before = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    _, rates = run_adamw(model, steps, graph)
    assert rates == pytest.approx([1e-2, 9e-3, 8e-3])
    decayed = [not any(re.search(p, v.name) for p in NO_WEIGHT_DECAY)
               for v in model.trainable_variables]
    assert any(decayed) and not all(decayed)
    expected = np_adamw(before, steps, rates, 0.1, 1.0, decayed)
    for variable, want in zip(model.trainable_variables, expected):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(variable), want,
                                   rtol=2e-5, atol=2e-6, err_msg=variable.path)


def test_without_a_strategy_tensorflow_updates_with_fused_ops_and_the_same_result():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("TensorFlow's fused training ops")
    import tensorflow as tf

    model, steps = adamw_case()
    optimizer = create_optimizer(1e-2, num_train_steps=10, weight_decay=0.1)
    optimizer.build(model.trainable_variables)
    traced = tf.function(lambda g: optimizer.apply(g, model.trainable_variables),
                         autograph=False).get_concrete_function(
        [tf.TensorSpec(v.shape, "float32") for v in model.trainable_variables])
    ops = [op.type for op in traced.graph.get_operations()]
    assert ops.count("ResourceApplyAdam") == len(model.trainable_variables)

    # Under a strategy Keras' per-replica update runs (no fused op), to the same weights.
    fused_model, _ = adamw_case()
    run_adamw(fused_model, steps, graph=True)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        mirrored_model, _ = adamw_case()
        optimizer = create_optimizer(1e-2, num_train_steps=10, weight_decay=0.1)
        optimizer.build(mirrored_model.trainable_variables)

    @tf.function(autograph=False)
    def mirrored_step(grads):
        strategy.run(lambda g: optimizer.apply(g, mirrored_model.trainable_variables),
                     args=(grads,))

    graph_ops = [op.type for op in mirrored_step.get_concrete_function(
        [tf.TensorSpec(v.shape, "float32") for v in mirrored_model.trainable_variables]
    ).graph.get_operations()]
    assert "ResourceApplyAdam" not in graph_ops
    for grads in steps:
        mirrored_step(grads)
    for a, b in zip(fused_model.trainable_variables, mirrored_model.trainable_variables):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a),
                                   keras.ops.convert_to_numpy(b), rtol=1e-5, atol=1e-6,
                                   err_msg=a.path)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
