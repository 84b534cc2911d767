"""Two `multi_worker_mirrored` workers on localhost, started without `--seed`: they
read disjoint shares of one training stream (together, exactly its global batches)
and build identical initial weights."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_bert_app.data import PretrainingDataConfig, create_pretraining_data
from tests.helpers import SHAKESPEARE_VOCAB, free_ports, write_shakespeare_corpus

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKER = os.path.join(REPO, "tests", "training", "input_worker.py")
STEPS = 3
TINY = dict(vocab_size=927, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=32)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    directory = tmp_path_factory.mktemp("records")
    corpus = write_shakespeare_corpus(str(directory / "corpus.txt"), num_lines=600,
                                      document_lines=50)
    create_pretraining_data(PretrainingDataConfig(
        input_files=(corpus,), output_files=(str(directory / "a.tfrecord"),
                                             str(directory / "b.tfrecord")),
        vocab_file=SHAKESPEARE_VOCAB, max_seq_length=32, max_predictions_per_seq=5,
        dupe_factor=1), verbose=0)
    return str(directory / "*.tfrecord")


def start(records, tmp_path, name, strategy, tf_config=None):
    # No seed: the default must be shared.
    spec = dict(input_file=records, model_dir=str(tmp_path / name), bert_config=TINY,
                vocab_file=SHAKESPEARE_VOCAB, do_lower_case=True, train_batch_size=8,
                num_train_steps=STEPS, num_warmup_steps=0,
                distribution_strategy=strategy, steps=STEPS)
    env = dict(os.environ, KERAS_BACKEND="tensorflow",
               PYTHONPATH=os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]))
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    output = tmp_path / f"{name}.npz"
    process = subprocess.Popen([sys.executable, WORKER, json.dumps(spec), str(output)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    return process, output


def finish(started):
    process, output = started
    log, _ = process.communicate(timeout=300)
    assert process.returncode == 0, log[-4000:]
    return dict(np.load(output))


def test_two_workers_read_disjoint_shares_and_start_identical(records, tmp_path):
    cluster = {"worker": [f"localhost:{p}" for p in free_ports(2)]}
    workers = [start(records, tmp_path, f"worker{i}", "multi_worker_mirrored",
                     {"cluster": cluster, "task": {"type": "worker", "index": i}})
               for i in range(2)]
    first, second = (finish(w) for w in workers)
    single = finish(start(records, tmp_path, "single", "default"))

    assert first["rows"].shape == second["rows"].shape == (STEPS, 4, 32)
    for step in range(STEPS):
        mine = {tuple(row) for row in first["rows"][step]}
        theirs = {tuple(row) for row in second["rows"][step]}
        whole = {tuple(row) for row in single["rows"][step]}
        assert not mine & theirs, f"step {step}: the workers read the same records"
        assert mine | theirs == whole, f"step {step}: together not the global batch"
    for key in (k for k in first if k.startswith("w")):
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)
        np.testing.assert_array_equal(first[key], single[key], err_msg=key)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
