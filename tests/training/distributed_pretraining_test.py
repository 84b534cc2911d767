"""Pre-training under distribution gives the same model as without it:
`mirrored` over two logical CPUs, `multi_worker_mirrored` with two local worker
processes (TF_CONFIG on localhost), and JAX data parallelism over two host devices.
Each run is its own process (devices and backends are fixed at start)."""

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from keras_bert_app.data import PretrainingDataConfig, create_pretraining_data
from tests.helpers import SHAKESPEARE_VOCAB, free_ports, write_shakespeare_corpus

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKER = os.path.join(REPO, "tests", "training", "run_worker.py")
STEPS = 4
# Dropout off: replicas draw different dropout masks, so only then must the
# distributed and single-device runs agree to rounding.
TINY = dict(vocab_size=927, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=32, hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    directory = tmp_path_factory.mktemp("records")
    corpus = write_shakespeare_corpus(str(directory / "corpus.txt"), num_lines=600,
                                      document_lines=50)
    create_pretraining_data(PretrainingDataConfig(
        input_files=(corpus,), output_files=(str(directory / "train.tfrecord"),),
        vocab_file=SHAKESPEARE_VOCAB, max_seq_length=32, max_predictions_per_seq=5,
        dupe_factor=2), verbose=0)
    return str(directory / "train.tfrecord")


def spec(records, model_dir, strategy="default", **overrides):
    values = dict(input_file=records, model_dir=str(model_dir), bert_config=TINY,
                  vocab_file=SHAKESPEARE_VOCAB, do_lower_case=True, train_batch_size=8,
                  num_train_steps=STEPS, num_warmup_steps=1, learning_rate=1e-3,
                  save_checkpoints_steps=2, log_steps=2, seed=7, verbose=0,
                  distribution_strategy=strategy)
    values.update(overrides)
    return values


def start(values, output, backend="tensorflow", tf_config=None):
    env = dict(os.environ, KERAS_BACKEND=backend,
               PYTHONPATH=os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]))
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen([sys.executable, WORKER, json.dumps(values), str(output)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def finish(process, output, timeout=300):
    log, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, log[-4000:]
    return dict(np.load(output))


def run(values, output, **kwargs):
    return finish(start(values, output, **kwargs), output)


def assert_same_weights(a, b, atol):
    keys = sorted(k for k in a if k.startswith("w"))
    assert keys == sorted(k for k in b if k.startswith("w"))
    for key in keys:
        np.testing.assert_allclose(a[key], b[key], rtol=0, atol=atol, err_msg=key)


def test_mirrored_over_two_cpu_devices_equals_one_device(records, tmp_path):
    single = run(spec(records, tmp_path / "single"), tmp_path / "single.npz")
    mirrored = run(spec(records, tmp_path / "mirrored", "mirrored", cpu_devices=2),
                   tmp_path / "mirrored.npz")
    assert int(single["num_replicas"]) == 1 and int(mirrored["num_replicas"]) == 2
    assert int(mirrored["iterations"]) == STEPS
    # Each replica takes half of every global batch; the gradients are summed and the
    # loss scaled by 1/replicas, so the update equals the one-device update.
    assert_same_weights(single, mirrored, atol=2e-5)
    # ... and training did move them: the step-2 and step-4 checkpoints differ.
    early, late = (checkpoint_arrays(tmp_path / "mirrored" / "checkpoints" /
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


def test_jax_data_parallel_over_two_host_devices(records, tmp_path):
    single = run(spec(records, tmp_path / "single"), tmp_path / "single.npz",
                 backend="jax")
    parallel = run(spec(records, tmp_path / "parallel", "mirrored", cpu_devices=2),
                   tmp_path / "parallel.npz", backend="jax")
    assert int(single["num_replicas"]) == 1 and int(parallel["num_replicas"]) == 2
    assert int(parallel["iterations"]) == STEPS
    assert_same_weights(single, parallel, atol=2e-5)


def checkpoint_arrays(path):
    """Every model weight of a checkpoint file, by its path inside the file."""
    arrays = {}
    with h5py.File(path) as f:
        f["layers"].visititems(lambda name, item: arrays.__setitem__(name, item[()])
                               if isinstance(item, h5py.Dataset) else None)
    return arrays



if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
