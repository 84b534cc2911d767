"""The README's Python blocks, each run as pasted in a fresh interpreter (after the
commands that write what it reads): complete programs that print what their comments
say."""

import sys

import pytest

from tests.readme.readme_blocks import Workspace, ids_for


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return Workspace(str(tmp_path_factory.mktemp("readme")))


@pytest.mark.parametrize("block_id", ids_for("python"))
def test_readme_block_runs_as_shown(workspace, block_id):
    workspace.run(block_id)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
