"""How a pipeline ends (`pipelines.errors.run`): the exit status says how main ended,
the exit handlers run and every printed line arrives, and the interpreter is not torn
down object by object (the OS frees a run's memory at once) except where a cluster's
peers or child processes may still need an orderly exit."""

import os
import subprocess
import sys
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Joined, never replaced: under Bazel PYTHONPATH is how the packages are found.
PYTHONPATH = os.pathsep.join(p for p in [REPO, os.environ.get("PYTHONPATH", "")] if p)

PIPELINE = textwrap.dedent("""
    import atexit, sys
    import pipelines.frameworks
    from pipelines import errors

    pipelines.frameworks.import_frameworks = lambda: None  # no TensorFlow needed here
    out = sys.argv[1]

    class TornDown:
        def __init__(self, path, write):
            self.path, self.write = path, write

        def __del__(self):  # runs only when the interpreter tears its modules down
            self.write(self.path)

    # `open` bound now: the builtins are gone by the time modules are torn down.
    KEPT = TornDown(out + ".teardown", lambda path, open=open: open(path, "w").close())

    def main(argv):
        atexit.register(lambda: open(out + ".atexit", "w").write("yes"))
        sys.stdout.write("the last line, still buffered")
        if sys.argv[2] == "bad_input":
            raise ValueError("the flag --x has a bad value")
        if sys.argv[2] == "exit_message":
            sys.exit("stopped: a message")

    errors.run(main)
""")


def run_pipeline(tmp_path, outcome, **env):
    out = str(tmp_path / "marker")
    proc = subprocess.run(
        [sys.executable, "-c", PIPELINE, out, outcome], cwd=REPO, capture_output=True,
        text=True, timeout=120, env=dict(os.environ, PYTHONPATH=PYTHONPATH, **env))
    ran = {name: os.path.exists(f"{out}.{name}") for name in ("atexit", "teardown")}
    return proc, ran


@pytest.mark.parametrize("outcome, status, message", [
    ("success", 0, None),
    ("bad_input", 2, "error: the flag --x has a bad value"),
    ("exit_message", 1, "stopped: a message")])
def test_a_pipeline_exits_with_its_status_and_output_without_teardown(
        tmp_path, outcome, status, message):
    proc, ran = run_pipeline(tmp_path, outcome)
    assert proc.returncode == status, proc.stderr
    assert proc.stdout == "the last line, still buffered"
    if message:
        assert message in proc.stderr
    assert ran == {"atexit": True, "teardown": False}


RUN_FROM_ANOTHER_PROGRAM = textwrap.dedent("""
    import runpy, sys
    sys.argv = ["build_vocab", "--help"]
    try:
        runpy.run_module("pipelines.build_vocab", run_name="__main__")
    except SystemExit as done:
        print("the caller goes on after SystemExit", done.code)
""")


def test_a_pipeline_run_from_another_program_raises_system_exit_to_it():
    proc = subprocess.run([sys.executable, "-c", RUN_FROM_ANOTHER_PROGRAM], cwd=REPO,
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=PYTHONPATH))
    assert "the caller goes on after SystemExit" in proc.stdout, proc.stderr


def test_a_cluster_worker_exits_normally(tmp_path):
    proc, ran = run_pipeline(tmp_path, "success",
                             TF_CONFIG='{"cluster": {}, "task": {}}')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "the last line, still buffered"
    assert ran == {"atexit": True, "teardown": True}


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
