"""Gradient accumulation: k batches make one update on the mean of their gradients,
clipped as a whole, on the batch-counted schedule, under every distribution.

`mirrored` over two logical CPUs, `multi_worker_mirrored` with two local worker
processes and JAX data parallelism over two host devices must give the model one
device gives with the same accumulation. Devices and backends are fixed at a
process's start: the runs are made in worker processes, the single-process ones of
a backend together in one, like distributed_pretraining_test.py."""

import sys

import keras
import numpy as np
import pytest

from keras_bert_app.training import create_optimizer
from keras_bert_app.training.optimizers import AdamW, Lamb
from tests.helpers import SHAKESPEARE_VOCAB, free_ports
from tests.training.worker_processes import (assert_same_weights, checkpoint_arrays,
                                             finish, finish_runs, start, start_runs,
                                             write_records)

STEPS, ACCUMULATION = 4, 2
# Dropout off: replicas draw different dropout masks, so only then must the
# distributed and single-device runs agree to rounding.
TINY = dict(vocab_size=927, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=32, hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0)
# Two accumulation cycles of two batches. The first cycle's mean gradient is far above
# the clip norm (1.0) and its batches point in different directions; the second's is
# below it. Clipping each batch instead of the mean changes the first update's size
# relative to the second, and so the second Adam/LAMB step.
GRADIENTS = [{"kernel": [[3.0, 0.0], [0.0, 0.0]], "bias": [0.0, 0.0]},
             {"kernel": [[0.0, 0.0], [0.0, -4.0]], "bias": [0.0, 2.0]},
             {"kernel": [[0.1, 0.0], [-0.05, 0.0]], "bias": [0.02, 0.0]},
             {"kernel": [[0.1, 0.2], [0.0, 0.1]], "bias": [0.0, -0.1]}]
GRADIENTS = [{k: np.array(v, "float32") for k, v in batch.items()} for batch in GRADIENTS]


def variables():
    return [keras.Variable(np.array([[1.0, -2.0], [0.5, 3.0]], "float32"), name="kernel"),
            keras.Variable(np.array([0.25, -0.5], "float32"), name="bias")]


def make_optimizer(name, **kwargs):
    # A constant learning rate: one update per cycle on either side.
    return {"adamw": AdamW, "lamb": Lamb}[name](
        learning_rate=1e-2, weight_decay=0.1, global_clipnorm=1.0, epsilon=1e-6,
        exclude_from_weight_decay=["bias"], **kwargs)


def apply_all(optimizer, variables, gradients, apply=None):
    apply = apply or (lambda grads: optimizer.apply(grads, variables))
    optimizer.build(variables)
    for batch in gradients:
        apply([keras.ops.convert_to_tensor(batch[v.name]) for v in variables])
    return [keras.ops.convert_to_numpy(v) for v in variables]


def mean(batches, clip_each=False):
    scales = [min(1.0, 1.0 / global_norm(b)) if clip_each else 1.0 for b in batches]
    return {k: sum(b[k] * s for b, s in zip(batches, scales)) / len(batches)
            for k in batches[0]}


def global_norm(gradients):
    return float(np.sqrt(sum(np.sum(np.square(g)) for g in gradients.values())))


@pytest.mark.parametrize("name", ["adamw", "lamb"])
def test_k_batches_make_one_update_on_their_clipped_mean_gradient(name):
    accumulating = make_optimizer(name, gradient_accumulation_steps=2)
    weights = variables()
    initial = [keras.ops.convert_to_numpy(v) for v in weights]
    after_one = apply_all(accumulating, weights, GRADIENTS[:1])
    for before, after in zip(initial, after_one):
        np.testing.assert_array_equal(after, before)  # only accumulated so far
    got = apply_all(accumulating, weights, GRADIENTS[1:])
    assert int(accumulating.iterations) == 2  # updates, not batches

    means = [mean(GRADIENTS[:2]), mean(GRADIENTS[2:])]
    expected = apply_all(make_optimizer(name), variables(), means)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-7)
    assert not np.allclose(got[0], initial[0])
    # Clipping each batch before averaging would have given other weights.
    clipped_each = [mean(GRADIENTS[:2], clip_each=True), mean(GRADIENTS[2:], clip_each=True)]
    other = apply_all(make_optimizer(name), variables(), clipped_each)
    assert np.abs(other[0] - expected[0]).max() > 1e-5


def test_the_schedule_counts_batches_and_iterations_count_updates():
    optimizer = create_optimizer(1e-2, num_train_steps=10, num_warmup_steps=0,
                                 gradient_accumulation_steps=2)
    apply_all(optimizer, variables(), GRADIENTS)
    assert int(optimizer.iterations) == 2
    assert float(optimizer.learning_rate) == pytest.approx(1e-2 * (1 - 4 / 10))


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.distribute")
def test_mirrored_strategy_on_one_device_accumulates_like_no_strategy():
    # MirroredStrategy synchronises by merge call even with one replica (`mirrored`
    # on a one-GPU machine); Keras' own accumulation fails there inside tf.function.
    import tensorflow as tf

    expected = apply_all(create_optimizer(1e-2, 100, gradient_accumulation_steps=2),
                         variables(), GRADIENTS)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        weights = variables()
        optimizer = create_optimizer(1e-2, 100, gradient_accumulation_steps=2)
        optimizer.build(weights)

    @tf.function
    def apply(grads):
        strategy.run(lambda g: optimizer.apply(g, weights), args=(grads,))

    got = apply_all(optimizer, weights, GRADIENTS, apply=apply)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-7)
    assert int(optimizer.iterations) == 2


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TF optimizer hooks")
def test_keras_private_hooks_we_rely_on_are_called_as_we_assume():
    # Under tf.distribute our optimizers replace Keras' accumulation branch with a copy
    # of its steps (`_update_with_accumulated`, `_accumulate`) and sum gradients in
    # `_clip_gradients` instead of `_all_reduce_sum_gradients`. This pins the order
    # in which Keras (3.15) calls those hooks without a strategy, so a Keras upgrade
    # that changes it fails here rather than training differently.
    hooks = ["_backend_apply_gradients", "_backend_increment_gradient_accumulators",
             "_clip_gradients", "_apply_weight_decay", "_backend_update_step",
             "_all_reduce_sum_gradients", "_backend_reset_gradient_accumulators"]
    calls = []

    def recording(name):
        def method(self, *args, **kwargs):
            calls.append(name)
            return getattr(super(Recording, self), name)(*args, **kwargs)
        return method

    Recording = type("Recording", (AdamW,), {name: recording(name) for name in hooks})
    optimizer = Recording(learning_rate=1e-2, weight_decay=0.1,
                          gradient_accumulation_steps=2)
    weights = variables()
    apply_all(optimizer, weights, GRADIENTS[:1])
    assert calls == ["_backend_apply_gradients", "_backend_increment_gradient_accumulators"]
    calls.clear()
    apply_all(optimizer, weights, GRADIENTS[1:2])
    assert calls == ["_backend_apply_gradients", "_clip_gradients", "_apply_weight_decay",
                     "_backend_update_step", "_all_reduce_sum_gradients",
                     "_backend_reset_gradient_accumulators"]


# Pre-training runs, one per process.


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    return write_records(str(tmp_path_factory.mktemp("records")))


@pytest.fixture(scope="module")
def tensorflow_runs(records, tmp_path_factory):
    """The reference run (TensorFlow, no strategy, the same accumulation) and the
    `mirrored` run over two logical CPUs, one after the other in one process whose
    host CPU is split in two; started here, awaited by the first test that reads
    them, so they overlap that test's own processes. {name: (model_dir, arrays)}."""
    root = tmp_path_factory.mktemp("tensorflow_runs")
    names = ("one_device", "mirrored")
    outputs = [root / f"{name}.npz" for name in names]
    process = start_runs([(spec(records, root / "one_device"), outputs[0]),
                          (spec(records, root / "mirrored", "mirrored", cpu_devices=2),
                           outputs[1])])
    result = {}

    def runs():
        if not result:
            arrays = finish_runs(process, outputs)
            result.update({name: (root / name, a) for name, a in zip(names, arrays)})
        return result

    yield runs
    if process.poll() is None:
        process.kill()
        process.communicate()


def spec(records, model_dir, strategy="default", **overrides):
    values = dict(input_file=records, model_dir=str(model_dir), bert_config=TINY,
                  vocab_file=SHAKESPEARE_VOCAB, do_lower_case=True, train_batch_size=8,
                  num_train_steps=STEPS, num_warmup_steps=1, learning_rate=1e-3,
                  gradient_accumulation_steps=ACCUMULATION, save_checkpoints_steps=2,
                  log_steps=2, seed=7, verbose=0, distribution_strategy=strategy)
    values.update(overrides)
    return values


def assert_trained(model_dir):
    """The second update moved the weights: the step-2 and step-4 checkpoints (one
    and two updates) differ."""
    early, late = (checkpoint_arrays(model_dir / "checkpoints" / f"ckpt-{step}.weights.h5")
                   for step in (2, 4))
    assert max(np.abs(early[k] - late[k]).max() for k in early) > 1e-4


def test_mirrored_over_two_cpu_devices_equals_one_device(tensorflow_runs):
    _, reference = tensorflow_runs()["one_device"]
    mirrored_dir, mirrored = tensorflow_runs()["mirrored"]
    assert int(reference["num_replicas"]) == 1 and int(mirrored["num_replicas"]) == 2
    assert int(reference["iterations"]) == int(mirrored["iterations"]) == STEPS // 2
    assert_same_weights(reference, mirrored, atol=2e-5)
    assert_trained(mirrored_dir)


def test_multi_worker_mirrored_equals_one_device(records, tensorflow_runs, tmp_path):
    ports = free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    processes = [start(spec(records, tmp_path / "run", "multi_worker_mirrored"),
                       tmp_path / f"worker{i}.npz",
                       tf_config={"cluster": cluster, "task": {"type": "worker", "index": i}})
                 for i in range(2)]
    _, reference = tensorflow_runs()["one_device"]
    chief, other = [finish(p, tmp_path / f"worker{i}.npz") for i, p in enumerate(processes)]
    assert int(chief["num_replicas"]) == 2 and int(chief["iterations"]) == STEPS // 2
    assert_same_weights(chief, other, atol=0)
    assert_same_weights(reference, chief, atol=2e-5)
    assert_trained(tmp_path / "run")


def test_jax_data_parallel_equals_one_jax_device(records, tmp_path):
    # One process (two host devices): the one-device run first, then data parallel.
    outputs = [tmp_path / "single.npz", tmp_path / "parallel.npz"]
    single, parallel = finish_runs(start_runs(
        [(spec(records, tmp_path / "single"), outputs[0]),
         (spec(records, tmp_path / "parallel", "mirrored", cpu_devices=2), outputs[1])],
        backend="jax"), outputs)
    assert int(single["num_replicas"]) == 1
    assert int(parallel["num_replicas"]) == 2 and int(parallel["iterations"]) == STEPS // 2
    assert_same_weights(single, parallel, atol=2e-5)
    assert_trained(tmp_path / "parallel")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
