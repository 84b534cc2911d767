"""Pre-training under distribution gives the same model as without it:
`mirrored` over two logical CPUs, `multi_worker_mirrored` with two local worker
processes (TF_CONFIG on localhost), and JAX data parallelism over two host devices.
Devices and backends are fixed at a process's start: the runs are made in worker
processes, the single-process ones of a backend together in one."""

import os
import sys

import numpy as np
import pytest

from tests.helpers import SHAKESPEARE_VOCAB, free_ports
from tests.training.worker_processes import (assert_same_weights, checkpoint_arrays,
                                             finish, finish_runs, start, start_runs,
                                             write_records)

STEPS = 4
# Dropout off: replicas draw different dropout masks, so only then must the
# distributed and single-device runs agree to rounding.
TINY = dict(vocab_size=927, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=32, hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    return write_records(str(tmp_path_factory.mktemp("records")))


def spec(records, model_dir, strategy="default", **overrides):
    values = dict(input_file=records, model_dir=str(model_dir), bert_config=TINY,
                  vocab_file=SHAKESPEARE_VOCAB, do_lower_case=True, train_batch_size=8,
                  num_train_steps=STEPS, num_warmup_steps=1, learning_rate=1e-3,
                  save_checkpoints_steps=2, log_steps=2, seed=7, verbose=0,
                  distribution_strategy=strategy)
    values.update(overrides)
    return values


POLICIES = ("mixed_float16", "mixed_bfloat16")


@pytest.fixture(scope="module")
def tensorflow_runs(records, tmp_path_factory):
    """Every single-process TensorFlow run of this file, made one after another in one
    process whose host CPU is split in two: one device (no strategy; `one_device`
    with each mixed precision) and `mirrored` over both. Returns {name: (model_dir,
    arrays)}."""
    root = tmp_path_factory.mktemp("tensorflow_runs")
    runs = {"single": spec(records, root / "single"),
            "mirrored": spec(records, root / "mirrored", "mirrored", cpu_devices=2)}
    for policy in POLICIES:
        runs[f"one_{policy}"] = spec(records, root / f"one_{policy}", "one_device",
                                     mixed_precision=policy)
        runs[f"mirrored_{policy}"] = spec(records, root / f"mirrored_{policy}",
                                          "mirrored", cpu_devices=2,
                                          mixed_precision=policy)
    outputs = [root / f"{name}.npz" for name in runs]
    arrays = finish_runs(start_runs(list(zip(runs.values(), outputs))), outputs,
                         timeout=600)
    return {name: (root / name, result) for name, result in zip(runs, arrays)}


def test_mirrored_over_two_cpu_devices_equals_one_device(tensorflow_runs):
    _, single = tensorflow_runs["single"]
    mirrored_dir, mirrored = tensorflow_runs["mirrored"]
    assert int(single["num_replicas"]) == 1 and int(mirrored["num_replicas"]) == 2
    assert int(mirrored["iterations"]) == STEPS
    # Each replica takes half of every global batch; the gradients are summed and the
    # loss scaled by 1/replicas, so the update equals the one-device update.
    assert_same_weights(single, mirrored, atol=2e-5)
    # ... and training did move them: the step-2 and step-4 checkpoints differ.
    early, late = (checkpoint_arrays(mirrored_dir / "checkpoints" /
                                     f"ckpt-{step}.weights.h5") for step in (2, 4))
    assert max(np.abs(early[k] - late[k]).max() for k in early) > 1e-4


def test_multi_worker_mirrored_with_two_local_workers(records, tmp_path):
    ports = free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    model_dir = tmp_path / "run"
    processes = [start(spec(records, model_dir, "multi_worker_mirrored"),
                       tmp_path / f"worker{i}.npz",
                       tf_config={"cluster": cluster, "task": {"type": "worker", "index": i}})
                 for i in range(2)]
    results = [finish(p, tmp_path / f"worker{i}.npz") for i, p in enumerate(processes)]
    chief, other = results
    assert int(chief["num_workers"]) == 2 and int(chief["num_replicas"]) == 2
    assert bool(chief["is_chief"]) and not bool(other["is_chief"])
    assert int(chief["iterations"]) == int(other["iterations"]) == STEPS
    assert_same_weights(chief, other, atol=0)  # all-reduced: identical on every worker
    # Only the chief writes: checkpoints, logs and the model directory.
    assert sorted(os.listdir(model_dir / "checkpoints")) == [
        "checkpoint.json", "ckpt-2.weights.h5", "ckpt-4.weights.h5"]
    assert (model_dir / "model.weights.h5").is_file()


@pytest.mark.parametrize("policy", POLICIES)
def test_mixed_precision_under_mirrored_trains_as_on_one_device(tensorflow_runs, policy):
    one_dir, one = tensorflow_runs[f"one_{policy}"]
    _, mirrored = tensorflow_runs[f"mirrored_{policy}"]
    start = checkpoint_arrays(one_dir / "checkpoints" / "ckpt-2.weights.h5")
    for result in (one, mirrored):
        # float16 needs loss scaling (Keras' dynamic LossScaleOptimizer, 2**15 at the
        # start, halved on every step whose gradients overflow); bfloat16 has
        # float32's exponent range and needs none.
        scale = float(result["loss_scale"])
        assert (scale > 1.0) if policy == "mixed_float16" else scale == 0.0
        weights = [result[k] for k in result if k.startswith("w")]
        assert all(w.dtype == np.float32 and np.isfinite(w).all() for w in weights)
    assert int(one["num_replicas"]) == 1 and int(mirrored["num_replicas"]) == 2
    assert float(one["loss_scale"]) == float(mirrored["loss_scale"])
    # Half-precision rounding differs with the split of the batch; the two runs must
    # still agree far more closely than either moved in training.
    keys = sorted(k for k in one if k.startswith("w"))
    diff = np.mean([np.abs(one[k] - mirrored[k]).mean() for k in keys])
    late = checkpoint_arrays(one_dir / "checkpoints" / "ckpt-4.weights.h5")
    moved = np.mean([np.abs(start[k] - late[k]).mean() for k in start])
    assert moved > 1e-4 and diff < 0.1 * moved, (diff, moved)


def test_mixed_float16_with_two_local_workers_scales_the_loss_alike(records, tmp_path):
    ports = free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    processes = [start(spec(records, tmp_path / "run", "multi_worker_mirrored",
                            mixed_precision="mixed_float16"),
                       tmp_path / f"worker{i}.npz",
                       tf_config={"cluster": cluster, "task": {"type": "worker", "index": i}})
                 for i in range(2)]
    chief, other = [finish(p, tmp_path / f"worker{i}.npz") for i, p in enumerate(processes)]
    assert int(chief["num_replicas"]) == 2 and int(chief["iterations"]) == STEPS
    assert float(chief["loss_scale"]) == float(other["loss_scale"]) > 1.0
    assert_same_weights(chief, other, atol=0)


def test_jax_data_parallel_over_two_host_devices(records, tmp_path):
    # One process (two host devices): the one-device run first, then data parallel.
    outputs = [tmp_path / "single.npz", tmp_path / "parallel.npz"]
    single, parallel = finish_runs(start_runs(
        [(spec(records, tmp_path / "single"), outputs[0]),
         (spec(records, tmp_path / "parallel", "mirrored", cpu_devices=2), outputs[1])],
        backend="jax"), outputs)
    assert int(single["num_replicas"]) == 1 and int(parallel["num_replicas"]) == 2
    assert int(parallel["iterations"]) == STEPS
    # jit_compile "auto" by default: on JAX every step runs under jax.jit.
    assert bool(single["jit_compile"]) and bool(parallel["jit_compile"])
    assert_same_weights(single, parallel, atol=2e-5)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
