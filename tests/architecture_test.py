"""The layering that BUILD declares is the layering the code has: every import of
keras_bert_app code (lazy ones inside functions included) is a declared dependency of
the importing library or pipeline, and the declared graph has no cycle. A wrong-way
import (say, `layers` reaching into `training`) fails here, in `bazel test`."""

import ast
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(REPO, "keras_bert_app")


def build_dict(name):
    """A top-level dict literal of BUILD, e.g. `KBA_PACKAGES = {...}`."""
    with open(os.path.join(REPO, "BUILD")) as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and [t.id for t in node.targets] == [name]:
            return ast.literal_eval(node.value)
    raise AssertionError(f"BUILD has no {name}")


MODULES = build_dict("KBA_MODULES")
PACKAGES = build_dict("KBA_PACKAGES")
PIPELINES = build_dict("PIPELINES")
PIPELINE_HELPERS = build_dict("PIPELINE_HELPERS")
TESTS = build_dict("TESTS")
TEST_GROUPS = build_dict("TEST_GROUPS")
LIBRARIES = {**MODULES, **PACKAGES}


def imported_units(path):
    """The keras_bert_app libraries (BUILD names) that the file at `path` imports."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    units = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] != "keras_bert_app":
                continue
            units.update([parts[1]] if len(parts) > 1 else [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "keras_bert_app":
                    assert len(parts) > 1, f"{path} imports the whole package"
                    units.add(parts[1])
    return units


def library_files():
    for name in MODULES:
        yield name, os.path.join(PACKAGE, f"{name}.py")
    for name in PACKAGES:
        folder = os.path.join(PACKAGE, name)
        for file_name in sorted(os.listdir(folder)):
            if file_name.endswith(".py"):
                yield name, os.path.join(folder, file_name)


def test_every_library_file_belongs_to_a_declared_library():
    declared = {os.path.relpath(path, REPO) for _, path in library_files()}
    on_disk = set()
    for folder, _, files in os.walk(PACKAGE):
        on_disk.update(os.path.relpath(os.path.join(folder, f), REPO)
                       for f in files if f.endswith(".py"))
    assert on_disk - declared == {"keras_bert_app/__init__.py"}


@pytest.mark.parametrize("library,path", list(library_files()),
                         ids=lambda v: os.path.relpath(v, REPO) if "/" in str(v) else v)
def test_library_imports_only_its_declared_dependencies(library, path):
    undeclared = imported_units(path) - {library} - set(LIBRARIES[library])
    assert not undeclared, (f"{os.path.relpath(path, REPO)} imports {sorted(undeclared)}, "
                            f"which BUILD does not give `{library}` as dependencies")


@pytest.mark.parametrize("pipeline", sorted({**PIPELINES, **PIPELINE_HELPERS}))
def test_pipeline_imports_only_its_declared_dependencies(pipeline):
    declared = {**PIPELINES, **PIPELINE_HELPERS}[pipeline]
    undeclared = imported_units(os.path.join(REPO, pipeline)) - set(declared)
    assert not undeclared, f"{pipeline} imports undeclared {sorted(undeclared)}"


def test_the_declared_graph_is_layered_without_cycles():
    state = {}

    def visit(name, trail):
        if state.get(name) == "done":
            return
        assert state.get(name) != "open", f"dependency cycle: {' -> '.join(trail + [name])}"
        state[name] = "open"
        for dep in LIBRARIES[name]:
            assert dep in LIBRARIES, f"{name} depends on unknown library {dep}"
            visit(dep, trail + [name])
        state[name] = "done"

    for name in LIBRARIES:
        visit(name, [])
    # The backend-agnostic layers sit at the bottom: no TensorFlow-side package below,
    # only tf_tracing (no dependencies; it imports TensorFlow on that backend alone).
    assert set(LIBRARIES["layers"]) <= {"tf_tracing"} and LIBRARIES["tf_tracing"] == []
    assert not {"text", "data", "training", "export", "checkpoints"} & set(
        LIBRARIES["models"])


def test_every_pipeline_has_a_binary_target():
    on_disk = {f"pipelines/{f}" for f in os.listdir(os.path.join(REPO, "pipelines"))
               if f.endswith(".py") and f != "__init__.py"}
    assert on_disk == set(PIPELINES) | set(PIPELINE_HELPERS)
    assert not set(PIPELINES) & set(PIPELINE_HELPERS)


def test_every_test_file_is_a_bazel_target_that_runs_its_tests():
    """Bazel runs a test file as a script: without `pytest.main` at its end it imports
    the tests, runs none, and passes."""
    on_disk = {os.path.relpath(os.path.join(folder, f), REPO)
               for folder, _, files in os.walk(os.path.join(REPO, "tests"))
               for f in files if f.endswith("_test.py")}
    assert on_disk == set(TESTS), (on_disk ^ set(TESTS))
    for path in sorted(TESTS):
        with open(os.path.join(REPO, path), encoding="utf-8") as f:
            tail = f.read().rsplit('if __name__ == "__main__":', 1)
        assert len(tail) == 2 and "sys.exit(pytest.main([__file__" in tail[1], (
            f"{path} does not run its tests when Bazel executes it")


def test_a_grouped_test_file_is_in_one_group_of_its_own_folder():
    """A file in two groups would run twice; in none, it runs alone (BUILD). A group
    holds one folder's files, and its name is not a file's target name."""
    grouped = [src for srcs in TEST_GROUPS.values() for src in srcs]
    assert len(grouped) == len(set(grouped)), "a test file is in two groups"
    assert set(grouped) <= set(TESTS), set(grouped) - set(TESTS)
    alone = {src[len("tests/"):-len(".py")].replace("/", "_") for src in TESTS}
    for name, srcs in TEST_GROUPS.items():
        assert srcs and name.endswith("_test") and name not in alone, name
        assert len({os.path.dirname(src) for src in srcs}) == 1, (name, srcs)


def test_each_backend_suite_shard_runs_its_share_and_every_file_runs_once():
    from tests.backends import suite

    shards = {path: count for path, count in build_dict("TEST_SHARDS").items()
              if path.startswith("tests/backends/")}  # (the README's: accounting_test)
    assert set(shards) == {"tests/backends/jax_test.py"}  # torch: one action
    files = suite.test_files()
    assert "tests/models/encoder_test.py" in files and "tests/config_test.py" in files
    for path, count in shards.items():
        backend = path.rsplit("/", 1)[-1][:-len("_test.py")]
        parts = [suite.shard(backend, index, count) for index in range(count)]
        assert sorted(f for part in parts for f in part) == files, backend
        loads = [sum(suite.SECONDS[backend].get(f, 1.0) for f in part) for part in parts]
        assert max(loads) <= 1.2 * sum(loads) / count, (backend, loads)


def test_the_check_catches_a_wrong_way_import(tmp_path):
    wrong = tmp_path / "wrong.py"
    wrong.write_text("def f():\n    from keras_bert_app.training import pretraining\n")
    assert imported_units(str(wrong)) - {"layers"} - set(LIBRARIES["layers"]) == \
        {"training"}


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
