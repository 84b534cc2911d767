"""Two `multi_worker_mirrored` workers on localhost, started without a seed: they
read disjoint shares of one training stream (together, exactly its global batches)
and build identical initial weights."""

import sys

import numpy as np
import pytest

from tests.helpers import SHAKESPEARE_VOCAB, free_ports
from tests.training.worker_processes import INPUT_WORKER, finish, start, write_records

STEPS = 3
TINY = dict(vocab_size=927, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=32)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    return write_records(str(tmp_path_factory.mktemp("records")),
                         ("a.tfrecord", "b.tfrecord"), dupe_factor=1)


def start_worker(records, tmp_path, name, strategy, tf_config=None):
    # No seed: the default must be shared.
    spec = dict(input_file=records, model_dir=str(tmp_path / name), bert_config=TINY,
                vocab_file=SHAKESPEARE_VOCAB, do_lower_case=True, train_batch_size=8,
                num_train_steps=STEPS, num_warmup_steps=0,
                distribution_strategy=strategy, steps=STEPS)
    output = tmp_path / f"{name}.npz"
    return start(spec, output, tf_config=tf_config, worker=INPUT_WORKER), output


def test_two_workers_read_disjoint_shares_and_start_identical(records, tmp_path):
    cluster = {"worker": [f"localhost:{p}" for p in free_ports(2)]}
    workers = [start_worker(records, tmp_path, f"worker{i}", "multi_worker_mirrored",
                            {"cluster": cluster, "task": {"type": "worker", "index": i}})
               for i in range(2)]
    first, second = (finish(*w) for w in workers)
    single = finish(*start_worker(records, tmp_path, "single", "default"))

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
