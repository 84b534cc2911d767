"""The README's main path, in one process sequence as a reader follows it: learn a
vocabulary, create pre-training data, pre-train a few steps and draw the curves,
import the real MiniLM BERT, fine-tune it on a few shipped SST-2 rows, export the
text-in SavedModel and load it in a process without our package (and fine-tune on
the same rows read as your own files). Every command runs
as README.md prints it, with the tiny settings of tests/readme/readme_blocks.py."""

import sys

import pytest

from tests.readme.readme_blocks import Workspace, ids_for


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return Workspace(str(tmp_path_factory.mktemp("readme")))


@pytest.mark.parametrize("block_id", ids_for("chain"))
def test_readme_block_runs_as_shown(workspace, block_id):
    workspace.run(block_id)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
