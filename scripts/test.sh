#!/usr/bin/env bash
# The test suite, as CI runs it: every test file in a `bazel test` target (the long ones
# alone, a folder's shorter ones in one target: BUILD's TEST_GROUPS)
# (plain pytest where Bazel is not installed, outside CI), then the ten slowest tests
# of that run, as `pytest --durations` lists them. Two of the targets run the config,
# layer, model, optimizer and checkpoint tests again under KERAS_BACKEND=jax and torch
# (tests/backends/), beside the others (the distributed tests run JAX in their own
# processes already).
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES-}
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}

# The slowest test phases of a `bazel test` run (reports written since $2, the run's
# start in epoch seconds), from the JUnit XML each target's
# pytest wrote (tests/conftest.py): the properties setup_seconds, call_seconds,
# teardown_seconds and nodeid of every test case, and for the jax and torch suites
# (tests/backends) the phases of each test they ran (backend_phases).
slowest_bazel_tests() {
  "$py" - "$1" "$2" <<'PY'
import glob, os, sys
import xml.etree.ElementTree as ET

from tests.backends.suite import phases  # the repository root is the working folder

logs, started = sys.argv[1], float(sys.argv[2])
rows = []
for path in glob.glob(os.path.join(logs, "**", "test.xml"), recursive=True):
    if os.path.getmtime(path) < started:
        continue  # not run now: cached, or a target this BUILD no longer has
    target = "//:" + os.path.relpath(os.path.dirname(path), logs)
    if os.path.basename(os.path.dirname(path)).startswith("shard_"):  # shard_1_of_3
        target = ("//:" + os.path.relpath(os.path.dirname(os.path.dirname(path)), logs)
                  + " " + os.path.basename(os.path.dirname(path)).replace("_", " "))
    try:
        rows += [(seconds, when, nodeid, target) for seconds, when, nodeid in phases(path)]
    except ET.ParseError:
        continue
print(f"== slowest 10 tests of the bazel run ({len(rows)} test phases in the XML)")
for seconds, when, nodeid, target in sorted(rows, reverse=True)[:10]:
    print(f"{seconds:.2f}s {when:<8} {nodeid}  ({target})")
PY
}

if command -v bazel >/dev/null 2>&1; then
  echo "== bazel test //... (TensorFlow backend; the jax and torch suites in tests/backends)"
  status=0
  started=$(date +%s)
  scripts/bazel_test.sh || status=$?
  slowest_bazel_tests "$(pwd)/bazel-testlogs" "$started" || true
  if [ "$status" -ne 0 ]; then
    exit "$status"
  fi
elif [ "${CI:-}" = "true" ]; then
  echo "bazel is not installed; CI must run bazel test (scripts/install.sh --with-bazel)" >&2
  exit 1
else
  echo "== pytest (tensorflow backend; install Bazel to run the BUILD targets)"
  KERAS_BACKEND=tensorflow "$py" -m pytest -q --durations=10 tests
fi

