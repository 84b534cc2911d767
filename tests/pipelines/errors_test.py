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
        if sys.argv[2] == "idle_thread_pool":  # its idle worker, a non-daemon thread
            import concurrent.futures
            global POOL
            POOL = concurrent.futures.ThreadPoolExecutor(1)
            POOL.submit(int).result()
        if sys.argv[2] == "bad_input":
            raise ValueError("the flag --x has a bad value")
        if sys.argv[2] == "exit_message":
            sys.exit("stopped: a message")

    errors.run(main)
""")


def run_pipeline(tmp_path, outcome, how="-m", **env):
    """Runs PIPELINE as `python -m probe_pipeline` (as the pipelines run), or as
    `python FILE` (how="file")."""
    out = str(tmp_path / "marker")
    (tmp_path / "probe_pipeline.py").write_text(PIPELINE)
    # Buffered output: what the exit must flush.
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), PYTHONPATH]),
                       **env)
    environment.pop("PYTHONUNBUFFERED", None)
    start = ["-m", "probe_pipeline"] if how == "-m" else [str(tmp_path / "probe_pipeline.py")]
    proc = subprocess.run(
        [sys.executable, *start, out, outcome], cwd=REPO, capture_output=True,
        text=True, timeout=120, env=environment)
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
    way = sys.argv[1]
    sys.argv = ["build_vocab", "--help"]
    try:
        if way == "run_module":
            runpy.run_module("pipelines.build_vocab", run_name="__main__")
        elif way == "run_module_alter_sys":
            runpy.run_module("pipelines.build_vocab", run_name="__main__", alter_sys=True)
        else:
            runpy.run_path("pipelines/build_vocab.py", run_name="__main__")
    except SystemExit as done:
        print("the caller goes on after SystemExit", done.code)
""")


@pytest.mark.parametrize("way", ["run_module", "run_module_alter_sys", "run_path"])
def test_a_pipeline_run_from_another_program_raises_system_exit_to_it(way):
    proc = subprocess.run([sys.executable, "-c", RUN_FROM_ANOTHER_PROGRAM, way], cwd=REPO,
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=PYTHONPATH))
    assert "the caller goes on after SystemExit" in proc.stdout, proc.stderr


def test_a_pipeline_with_a_live_thread_exits_normally_without_waiting_forever(tmp_path):
    # An idle ThreadPoolExecutor worker (torch.compile leaves one) ends only when
    # Python's own exit wakes it: the normal exit is kept.
    proc, ran = run_pipeline(tmp_path, "idle_thread_pool")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "the last line, still buffered"
    assert ran == {"atexit": True, "teardown": True}


def test_a_pipeline_run_as_a_file_exits_without_teardown_too(tmp_path):
    proc, ran = run_pipeline(tmp_path, "success", how="file")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "the last line, still buffered"
    assert ran == {"atexit": True, "teardown": False}


def test_a_cluster_worker_exits_normally(tmp_path):
    proc, ran = run_pipeline(tmp_path, "success",
                             TF_CONFIG='{"cluster": {}, "task": {}}')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "the last line, still buffered"
    assert ran == {"atexit": True, "teardown": True}


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
