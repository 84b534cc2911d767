"""Training runs in separate processes, for the distribution tests: logical devices,
backends and TF_CONFIG must be set before TensorFlow or JAX starts. A worker script
(`run_worker.py`, `input_worker.py`) takes a JSON spec and writes an .npz."""

import json
import os
import subprocess
import sys

import h5py
import numpy as np

from keras_bert_app.data import PretrainingDataConfig, create_pretraining_data
from tests.helpers import SHAKESPEARE_VOCAB, write_shakespeare_corpus

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN_WORKER = os.path.join(REPO, "tests", "training", "run_worker.py")
INPUT_WORKER = os.path.join(REPO, "tests", "training", "input_worker.py")


def write_records(directory, file_names=("train.tfrecord",), dupe_factor=2):
    """Pre-training records (seq 32, 5 predictions) from 600 lines of Shakespeare in
    `directory`; returns their glob."""
    corpus = write_shakespeare_corpus(os.path.join(directory, "corpus.txt"),
                                      num_lines=600, document_lines=50)
    create_pretraining_data(PretrainingDataConfig(
        input_files=(corpus,), output_files=tuple(os.path.join(directory, name)
                                                  for name in file_names),
        vocab_file=SHAKESPEARE_VOCAB, max_seq_length=32, max_predictions_per_seq=5,
        dupe_factor=dupe_factor), verbose=0)
    return os.path.join(directory, "*.tfrecord")


def start(values, output, backend="tensorflow", tf_config=None, worker=RUN_WORKER):
    """Starts `worker` on the spec `values`, writing `output`; returns the process."""
    env = dict(os.environ, KERAS_BACKEND=backend,
               PYTHONPATH=os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]))
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen([sys.executable, worker, json.dumps(values), str(output)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def start_runs(runs, backend="tensorflow"):
    """Starts one RUN_WORKER process for several `(values, output)` runs, made one
    after another in it (one-device runs first: see run_worker.py); returns the
    process. For runs that need no process of their own: a one-device reference
    and a `mirrored` run share the host split into logical CPUs."""
    env = dict(os.environ, KERAS_BACKEND=backend,
               PYTHONPATH=os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]))
    env.pop("TF_CONFIG", None)
    specs = [values for values, _ in runs]
    return subprocess.Popen([sys.executable, RUN_WORKER, json.dumps(specs),
                             *[str(output) for _, output in runs]],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def finish(process, output, timeout=300):
    """Waits for `process`; its log on failure, else the arrays it wrote."""
    log, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, log[-4000:]
    return dict(np.load(output))


def finish_runs(process, outputs, timeout=300):
    """`finish` for a `start_runs` process: the arrays of each output, in order."""
    log, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, log[-4000:]
    return [dict(np.load(output)) for output in outputs]


def assert_same_weights(a, b, atol):
    keys = sorted(k for k in a if k.startswith("w"))
    assert keys == sorted(k for k in b if k.startswith("w"))
    for key in keys:
        np.testing.assert_allclose(a[key], b[key], rtol=0, atol=atol, err_msg=key)


def checkpoint_arrays(path):
    """Every model weight of a checkpoint file, by its path inside the file."""
    arrays = {}
    with h5py.File(path) as f:
        f["layers"].visititems(lambda name, item: arrays.__setitem__(name, item[()])
                               if isinstance(item, h5py.Dataset) else None)
    return arrays
