"""The tests that run again under Keras' other backends: configs, layers, models, the
text preprocessing layer, optimizers and checkpoints (the distributed tests start
JAX in their own processes already). Each backend's suite is one pytest run in a
child process, since Keras picks its backend once, at import; under `bazel test` it
is a target of its own (tests/backends/jax_test.py, torch_test.py), run beside the
others rather than after them. The child's per-test timings go into the target's
JUnit report (the `backend_phases` property), where scripts/test.sh finds them."""

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FILES = ("tests/config_test.py", "tests/layers", "tests/models",
         "tests/text/preprocessing_layer_test.py", "tests/training/optimizers_test.py",
         "tests/training/checkpointing_test.py")
PHASES = ("setup", "call", "teardown")


def run_suite(backend, work_dir, record_property, timeout_s=1800):
    """Runs FILES under `KERAS_BACKEND=backend`; fails with pytest's report unless
    every test passed or was skipped. Records `[seconds, phase, nodeid]` of every
    test phase as the `backend_phases` property."""
    report = os.path.join(work_dir, f"{backend}.xml")
    env = dict(os.environ, KERAS_BACKEND=backend,
               # Joined, never replaced: under Bazel PYTHONPATH is how packages are found.
               PYTHONPATH=os.pathsep.join(
                   p for p in [REPO, os.environ.get("PYTHONPATH", "")] if p))
    env.pop("XML_OUTPUT_FILE", None)  # Bazel's report is the outer test's
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
         f"--junitxml={report}", *FILES], cwd=REPO, env=env, capture_output=True,
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
