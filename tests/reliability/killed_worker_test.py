"""Two-worker `multi_worker_mirrored` pre-training on localhost with one worker
SIGKILLed mid-run: restarting both resumes from the chief's last checkpoint, and both
end with identical weights, those of an uninterrupted two-worker run."""

import json
import os
import sys
import time

import numpy as np
import pytest

from tests.helpers import SHAKESPEARE_VOCAB, free_ports
from tests.reliability import faults
from tests.training.worker_processes import RUN_WORKER, assert_same_weights, write_records

STEPS, SAVE = 40, 10


def spec(records, model_dir):
    return dict(input_file=records, model_dir=str(model_dir), bert_config=faults.TINY_BERT,
                vocab_file=SHAKESPEARE_VOCAB, do_lower_case=True, train_batch_size=8,
                num_train_steps=STEPS, num_warmup_steps=4, learning_rate=1e-3,
                save_checkpoints_steps=SAVE, log_steps=SAVE, seed=7, verbose=0,
                distribution_strategy="multi_worker_mirrored")


def start_workers(values, outputs):
    """Both workers of a fresh localhost cluster (new ports: the old ones may linger)."""
    cluster = {"worker": [f"localhost:{port}" for port in free_ports(2)]}
    return [faults.Child(None, [json.dumps(values), outputs[i]], script=RUN_WORKER,
                         env={"KERAS_BACKEND": "tensorflow", "TF_CONFIG": json.dumps(
                             {"cluster": cluster, "task": {"type": "worker", "index": i}})})
            for i in range(2)]


def finish(workers, outputs):
    for worker in workers:
        assert worker.wait() == 0, worker.output[-3000:]
    return [dict(np.load(output)) for output in outputs]


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    return write_records(str(tmp_path_factory.mktemp("records")))


def test_a_killed_worker_and_a_restart_of_both_end_as_an_uninterrupted_run(records,
                                                                           tmp_path):
    reference_outputs = [str(tmp_path / f"reference{i}.npz") for i in range(2)]
    reference = finish(start_workers(spec(records, tmp_path / "reference"),
                                     reference_outputs), reference_outputs)

    model_dir = tmp_path / "run"
    checkpoints = str(model_dir / "checkpoints")
    outputs = [str(tmp_path / f"worker{i}.npz") for i in range(2)]
    chief, other = start_workers(spec(records, model_dir), outputs)
    # The non-chief worker dies once the chief has checkpointed step 10; the chief,
    # waiting on its collectives, is then stopped too (or fails on its own).
    assert other.kill_when(faults.when_checkpoint_exists(checkpoints, SAVE)), other.output
    deadline = time.monotonic() + 20
    while chief.running() and time.monotonic() < deadline:
        time.sleep(0.1)
    chief.kill()
    steps = faults.checkpoint_steps(checkpoints)
    assert steps and steps[-1] < STEPS, steps
    assert faults.unreadable_checkpoints(checkpoints) == {}
    assert not os.path.exists(outputs[0]) and not os.path.exists(outputs[1])

    restarted = start_workers(spec(records, model_dir), outputs)
    results = finish(restarted, outputs)
    assert f"steps {steps[-1]} → {STEPS}" in restarted[0].output
    assert all(int(r["iterations"]) == STEPS for r in results)
    assert_same_weights(results[0], results[1], atol=0)  # all-reduced: identical
    assert_same_weights(reference[0], results[0], atol=1e-5)
    assert faults.checkpoint_steps(checkpoints)[-1] == STEPS


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
