"""The tests that run again under Keras' other backends: configs, layers, models, the
text preprocessing layer, optimizers and checkpoints (the distributed tests start
JAX in their own processes already). Each backend's suite is one pytest run in a
child process, since Keras picks its backend once, at import; under `bazel test` it
is a target of its own (tests/backends/jax_test.py, torch_test.py), run beside the
others rather than after them. The child's per-test timings go into the target's
JUnit report (the `backend_phases` property), where scripts/test.sh finds them."""

import glob
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

from tests.bazel_main import NO_FRAMEWORKS

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FILES = ("tests/config_test.py", "tests/layers", "tests/models",
         "tests/text/preprocessing_layer_test.py", "tests/training/optimizers_test.py",
         "tests/training/checkpointing_test.py")
PHASES = ("setup", "call", "teardown")
# Seconds each file's tests took in a `bazel test` run (2026-12-06 00:06, a slow hour
# of the 2-core machine; the README example's MiniLM run left out: it runs on
# TensorFlow only), per sharded backend (BUILD's TEST_SHARDS: the torch suite is one
# action): what the shards are balanced on (a file not listed counts 1 s).
SECONDS = {
    "jax": {"tests/models/classifier_text_test.py": 53.0, "tests/models/remat_test.py": 48.4,
            "tests/models/mixed_precision_test.py": 34.1,
            "tests/models/encoder_test.py": 30.2, "tests/models/serialization_test.py": 26.0,
            "tests/models/pretrainer_test.py": 19.1,
            "tests/models/task_models_test.py": 14.6,
            "tests/text/preprocessing_layer_test.py": 12.5,
            "tests/training/checkpointing_test.py": 12.5,
            "tests/training/optimizers_test.py": 12.0,
            "tests/layers/attention_test.py": 8.6},
}


def test_files():
    """FILES with each folder expanded to its `*_test.py` files, sorted."""
    found = []
    for entry in FILES:
        if os.path.isdir(os.path.join(REPO, entry)):
            found += [os.path.relpath(path, REPO) for path in
                      glob.glob(os.path.join(REPO, entry, "*_test.py"))]
        else:
            found.append(entry)
    return sorted(found)


def shard(backend, index, count):
    """The files of shard `index` of `count`: the longest first, each to the shard
    with the least time so far (`SECONDS`). Every file is in exactly one shard."""
    weights = SECONDS.get(backend, {})
    shards = [[] for _ in range(count)]
    loads = [0.0] * count
    for path in sorted(test_files(), key=lambda f: (-weights.get(f, 1.0), f)):
        lightest = loads.index(min(loads))
        shards[lightest].append(path)
        loads[lightest] += weights.get(path, 1.0)
    return sorted(shards[index])


def bazel_shard(backend):
    """This process' files under Bazel's test sharding (`shard_count` in BUILD:
    TEST_TOTAL_SHARDS, TEST_SHARD_INDEX; the status file says the test shards), else
    all of them."""
    count = int(os.environ.get("TEST_TOTAL_SHARDS", "1"))
    if count <= 1:
        return list(FILES)
    status = os.environ.get("TEST_SHARD_STATUS_FILE")
    if status:
        open(status, "a").close()
    return shard(backend, int(os.environ["TEST_SHARD_INDEX"]), count)


def run_suite(backend, work_dir, record_property, timeout_s=1800):
    """Runs FILES (under Bazel, this shard's: `bazel_shard`) under
    `KERAS_BACKEND=backend`; fails with pytest's report unless every test passed or
    was skipped. Records `[seconds, phase, nodeid]` of every test phase as the
    `backend_phases` property."""
    files = bazel_shard(backend)
    if not files:  # pytest without paths would run the whole tests/ folder
        record_property("backend_phases", json.dumps([]))
        return
    report = os.path.join(work_dir, f"{backend}.xml")
    env = dict(os.environ, KERAS_BACKEND=backend,
               # Joined, never replaced: under Bazel PYTHONPATH is how packages are found.
               PYTHONPATH=os.pathsep.join(
                   p for p in [REPO, os.environ.get("PYTHONPATH", "")] if p))
    env.pop("XML_OUTPUT_FILE", None)  # Bazel's report is the outer test's
    env.pop(NO_FRAMEWORKS, None)  # tests/bazel_main.py's, for this process only
    for name in ("TEST_TOTAL_SHARDS", "TEST_SHARD_INDEX", "TEST_SHARD_STATUS_FILE"):
        env.pop(name, None)  # the shard is chosen here, not again in the child
    if backend == "jax":
        # Eager JAX compiles each op with XLA for its shapes, and these tests run many
        # small ops of many shapes once or twice: LLVM's optimisation of that code
        # costs more than it saves. Measured on the 2-core machine, remat_test and
        # mixed_precision_test under JAX: 74 s -> 49 s. The same ops run (XLA's CPU
        # fast-math stays off); rounding may differ in the last bit where LLVM would
        # have contracted a multiply-add. The tests' tolerances are as under TensorFlow.
        env["XLA_FLAGS"] = " ".join(
            f for f in [os.environ.get("XLA_FLAGS", ""),
                        "--xla_backend_optimization_level=0"] if f)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         f"--junitxml={report}", *files], cwd=REPO, env=env, capture_output=True,
        text=True, timeout=timeout_s)
    assert proc.returncode == 0, (f"KERAS_BACKEND={backend} pytest exited with "
                                  f"{proc.returncode}:\n{proc.stdout[-8000:]}\n"
                                  f"{proc.stderr[-3000:]}")
    assert " passed" in proc.stdout.splitlines()[-1], proc.stdout[-2000:]
    record_property("backend_phases", json.dumps(phases(report)))


def phases(report):
    """`[seconds, phase, nodeid]` of each test phase in a JUnit report written with
    tests/conftest.py's properties; a backend suite's test stands for the tests it
    ran (`backend_phases`), named `[jax] <nodeid>`. scripts/test.sh reads Bazel's
    reports with it."""
    rows = []
    for case in ET.parse(report).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        nodeid = props.get("nodeid", f"{case.get('classname')}::{case.get('name')}")
        if "backend_phases" in props:
            backend = nodeid.rsplit("_under_", 1)[-1]
            rows += [[seconds, when, f"[{backend}] {inner}"]
                     for seconds, when, inner in json.loads(props["backend_phases"])]
            continue
        rows += [[float(props[f"{when}_seconds"]), when, nodeid]
                 for when in PHASES if f"{when}_seconds" in props]
    return rows
