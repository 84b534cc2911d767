"""The main of every `py_test` target (BUILD). Its arguments are the target's test
files, then any `--test_arg`s. One file runs as a script, as `python <file>` would
(its footer calls pytest.main); several (a group of BUILD's TEST_GROUPS) run in one
pytest session, the `--test_arg`s passed on (`-k NAME` picks tests). Either way
TensorFlow and Keras are imported first, as the pipelines import them: without the
JAX, scikit-learn and matplotlib that Keras' import pulls in (pipelines/frameworks.py),
measured 1.2-2.4 s of each target's start-up on the 2-core machine. The test files'
own imports come after, so this has to run before them: conftest.py is imported
later."""

import os
import runpy
import sys

if __name__ == "__main__":
    # Python put this file's folder first on the path: tests/ holds a `pipelines`
    # package of its own (tests/pipelines), which would hide the real one.
    del sys.path[0]

from pipelines.frameworks import import_frameworks, keras_backend_is_tensorflow  # noqa: E402


# Test files whose tests only start a child pytest under another Keras backend
# (tests/backends/suite.py): their own process needs no TensorFlow (~3 s of CPU in
# each of their four actions), so neither this file nor conftest.py imports it there.
LAUNCHERS = ("tests/backends/jax_test.py", "tests/backends/torch_test.py")
NO_FRAMEWORKS = "KBA_TEST_NO_FRAMEWORKS"


def split_arguments(argv):
    """`(files, other arguments)`: the leading `*_test.py` arguments, then the rest."""
    count = 0
    while count < len(argv) and argv[count].endswith("_test.py"):
        count += 1
    if not count:
        raise SystemExit(f"tests/bazel_main.py: no test file in {argv}")
    return [os.path.abspath(f) for f in argv[:count]], argv[count:]


def writable_user_cache():
    """Under `bazel test` HOME is unset, `~` is the account's home, and the sandbox
    mounts it read-only: every user cache (the TF core-op list each export check
    reads, ~3-5 s to make in a child process; XLA programs) failed to write and was
    made again in every process. The target's own TEST_TMPDIR holds one instead,
    shared by the processes it starts (they inherit the variable); a cache folder the
    caller set is kept."""
    if os.environ.get("TEST_TMPDIR") and not os.environ.get("XDG_CACHE_HOME"):
        os.environ["XDG_CACHE_HOME"] = os.path.join(os.environ["TEST_TMPDIR"], "cache")
        shared_core_op_lists()


def shared_core_op_lists():
    """The list of TensorFlow's core ops that exports are checked against is made in a
    child process (3-6 s) once per user cache, so once per target: ~20 targets
    export. That list is a function of the TensorFlow installation alone, and its file
    is named by a digest of it (`export.serving_ops`), so every target shares one
    folder of them: `$KBA_TEST_SHARED_CACHE` (a folder under /tmp, which the sandbox
    leaves writable; scripts/bazel_test.sh sets it). Only that folder is shared: the
    XLA programs and everything else stay the target's own."""
    shared = os.environ.get("KBA_TEST_SHARED_CACHE")
    if not shared:
        return
    lists = os.path.join(shared, "tf_core_ops")
    link = os.path.join(os.environ["XDG_CACHE_HOME"], "keras_bert_app", "tf_core_ops")
    try:
        os.makedirs(lists, exist_ok=True)
        os.makedirs(os.path.dirname(link), exist_ok=True)
        if not os.path.lexists(link):
            os.symlink(lists, link)
    except OSError:
        pass  # an unshared cache: the target lists the ops itself


def passive_openmp_threads():
    """Bazel runs two test actions at once on a 2-core machine. PyTorch's OpenMP
    threads (the torch backend suite; the Hugging Face references of the checkpoint
    and embedding tests) spin while they wait for each other, and with the other
    action holding a core the spin is most of their time: one torch test took 16 s
    beside two busy processes against 3.2 s alone, 5.3 s with OpenMP's passive wait.
    Passive is set for the target and the processes it starts; a policy the caller
    set is kept."""
    if os.environ.get("TEST_TMPDIR"):
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main():
    files, rest = split_arguments(sys.argv[1:])
    writable_user_cache()
    passive_openmp_threads()
    if all(f.endswith(LAUNCHERS) for f in files):
        os.environ[NO_FRAMEWORKS] = "1"  # for conftest.py; the child pytest drops it
    elif keras_backend_is_tensorflow():
        import_frameworks()
    if len(files) == 1:
        sys.argv = files + rest
        sys.path.insert(0, os.path.dirname(files[0]))  # as for `python <file>`
        runpy.run_path(files[0], run_name="__main__")
        return
    import pytest

    sys.exit(pytest.main(["-q", *rest, *files]))


if __name__ == "__main__":
    main()
