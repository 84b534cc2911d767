"""tests/bazel_main.py, the main of every Bazel test target: which arguments are test
files, the user cache a sandboxed target can write (and the one folder all targets
share), PyTorch's passive OpenMP wait, and the launcher targets that import no
TensorFlow."""

import os
import sys

import pytest

from tests import bazel_main

ENVIRONMENT = ("TEST_TMPDIR", "XDG_CACHE_HOME", "KBA_TEST_SHARED_CACHE", "OMP_WAIT_POLICY",
               bazel_main.NO_FRAMEWORKS)


@pytest.fixture
def environ(monkeypatch):
    """A clean slate of the variables bazel_main reads and sets; each is restored
    after the test, whatever bazel_main set."""
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_leading_test_files_are_the_files_and_the_rest_is_passed_on():
    files, rest = bazel_main.split_arguments(["tests/a_test.py", "tests/b_test.py", "-k",
                                              "name"])
    assert files == [os.path.abspath("tests/a_test.py"), os.path.abspath("tests/b_test.py")]
    assert rest == ["-k", "name"]
    with pytest.raises(SystemExit, match="no test file"):
        bazel_main.split_arguments(["-k", "name"])


def test_a_sandboxed_target_gets_its_own_cache_and_shares_only_the_op_lists(environ,
                                                                           tmp_path):
    environ.setenv("TEST_TMPDIR", str(tmp_path / "target"))
    environ.setenv("KBA_TEST_SHARED_CACHE", str(tmp_path / "shared"))
    bazel_main.writable_user_cache()
    cache = tmp_path / "target" / "cache"
    assert os.environ["XDG_CACHE_HOME"] == str(cache)
    link = cache / "keras_bert_app" / "tf_core_ops"
    assert link.is_symlink() and os.readlink(link) == str(tmp_path / "shared" / "tf_core_ops")
    assert (tmp_path / "shared" / "tf_core_ops").is_dir()
    assert sorted(os.listdir(cache / "keras_bert_app")) == ["tf_core_ops"]


def test_a_cache_the_caller_chose_is_kept_and_nothing_is_shared_without_the_folder(
        environ, tmp_path):
    environ.setenv("TEST_TMPDIR", str(tmp_path / "target"))
    environ.setenv("XDG_CACHE_HOME", str(tmp_path / "mine"))
    bazel_main.writable_user_cache()
    assert os.environ["XDG_CACHE_HOME"] == str(tmp_path / "mine")
    assert not (tmp_path / "mine").exists()
    environ.delenv("XDG_CACHE_HOME")
    bazel_main.writable_user_cache()  # no KBA_TEST_SHARED_CACHE: an unshared cache
    assert not (tmp_path / "target" / "cache" / "keras_bert_app").exists()


def test_outside_bazel_the_user_cache_is_left_alone(environ):
    bazel_main.writable_user_cache()
    assert "XDG_CACHE_HOME" not in os.environ


def test_openmp_waits_passively_under_bazel_unless_the_caller_chose(environ):
    bazel_main.passive_openmp_threads()
    assert "OMP_WAIT_POLICY" not in os.environ  # not under Bazel
    environ.setenv("TEST_TMPDIR", "/unused")
    bazel_main.passive_openmp_threads()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    environ.setenv("OMP_WAIT_POLICY", "ACTIVE")
    bazel_main.passive_openmp_threads()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_only_the_backend_suite_launchers_skip_the_frameworks(environ, monkeypatch):
    """main() marks a target whose files are all launchers and imports nothing for it;
    any other target imports TensorFlow and Keras first (stubbed here: only the
    decision is under test)."""
    imported, ran = [], []
    monkeypatch.setattr(bazel_main, "import_frameworks", lambda: imported.append(1))
    monkeypatch.setattr(bazel_main, "keras_backend_is_tensorflow", lambda: True)
    monkeypatch.setattr(bazel_main.runpy, "run_path",
                        lambda path, run_name: ran.append(path))
    monkeypatch.setattr(sys, "argv", ["bazel_main.py", "tests/backends/jax_test.py"])
    monkeypatch.setattr(sys, "path", list(sys.path))
    bazel_main.main()
    assert os.environ.get(bazel_main.NO_FRAMEWORKS) == "1" and imported == []
    assert ran == [os.path.abspath("tests/backends/jax_test.py")]
    environ.delenv(bazel_main.NO_FRAMEWORKS)
    monkeypatch.setattr(sys, "argv", ["bazel_main.py", "tests/config_test.py"])
    bazel_main.main()
    assert bazel_main.NO_FRAMEWORKS not in os.environ and imported == [1]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
