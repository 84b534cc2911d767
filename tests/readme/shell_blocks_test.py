"""The README's other shell blocks: the preprocessing export, pre-training under
`mirrored` (two logical CPUs), two `multi_worker_mirrored` workers with TF_CONFIG on
localhost, bfloat16 with XLA, and sentence-pair fine-tuning on ../shared/data's RTE;
each after the blocks it reads, with tiny settings. Under Bazel, in the shards of
`readme_blocks.SHELL_SHARDS`."""

import sys

import pytest

from tests.readme.readme_blocks import Workspace, shell_ids_of_this_shard


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return Workspace(str(tmp_path_factory.mktemp("readme")))


@pytest.mark.parametrize("block_id", shell_ids_of_this_shard())
def test_readme_block_runs_as_shown(workspace, block_id):
    workspace.run(block_id)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
