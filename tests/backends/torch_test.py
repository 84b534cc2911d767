"""The config, layer, model, optimizer and checkpoint tests pass under
KERAS_BACKEND=torch too (tests/backends/suite.py)."""

import sys

import pytest

from tests.backends.suite import run_suite


def test_the_backend_agnostic_tests_pass_under_torch(tmp_path, record_property):
    run_suite("torch", str(tmp_path), record_property)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
