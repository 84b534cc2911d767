"""`import_frameworks`: a pipeline imports TensorFlow and Keras without the optional
packages they would pull in (JAX, scikit-learn, matplotlib), which still import
normally afterwards, and never hides JAX from a JAX backend."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from pipelines.frameworks import keras_backend_is_tensorflow

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Joined, never replaced: under Bazel PYTHONPATH is how the packages are found.
PYTHONPATH = os.pathsep.join(p for p in [REPO, os.environ.get("PYTHONPATH", "")] if p)
OPTIONAL = ("jax", "sklearn", "matplotlib")

PROBE = textwrap.dedent("""
    import sys
    from pipelines.frameworks import import_frameworks

    import_frameworks()
    import keras

    optional = ("jax", "sklearn", "matplotlib")
    print("backend:", keras.backend.backend())
    print("imported:", ",".join(m for m in optional if m in sys.modules) or "none")
    import matplotlib.pyplot, sklearn  # what plot_logs and a user's code may import
    print("later:", ",".join(m for m in optional[1:] if m in sys.modules))
    import keras_bert_app
    print("ones:", keras.ops.convert_to_numpy(keras.ops.ones(2)).tolist())
""")


def run_probe(tmp_path, **env):
    environment = dict(os.environ, PYTHONPATH=PYTHONPATH, KERAS_HOME=str(tmp_path), **env)
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=environment,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return dict(line.split(": ", 1) for line in out.stdout.splitlines() if ": " in line)


def test_tensorflow_backend_imports_none_of_the_optional_packages(tmp_path):
    seen = run_probe(tmp_path, KERAS_BACKEND="tensorflow")
    assert seen["backend"] == "tensorflow"
    assert seen["imported"] == "none"
    assert seen["later"] == "sklearn,matplotlib"  # hidden only while TF/Keras import
    assert seen["ones"] == "[1.0, 1.0]"


def test_a_jax_backend_still_gets_jax(tmp_path):
    pytest.importorskip("jax")
    seen = run_probe(tmp_path, KERAS_BACKEND="jax")
    assert seen["backend"] == "jax"
    assert seen["imported"] == "jax"
    assert seen["ones"] == "[1.0, 1.0]"


def test_the_backend_is_read_as_keras_reads_it(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    assert keras_backend_is_tensorflow()  # no keras.json: Keras' default
    (tmp_path / "keras.json").write_text(json.dumps({"backend": "jax"}))
    assert not keras_backend_is_tensorflow()
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")  # the variable wins over the file
    assert keras_backend_is_tensorflow()
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    assert not keras_backend_is_tensorflow()
    monkeypatch.delenv("KERAS_BACKEND")
    (tmp_path / "keras.json").write_text("{not json")
    assert not keras_backend_is_tensorflow()  # unreadable: JAX is not hidden


def test_a_jax_backend_from_keras_json_still_gets_jax(tmp_path):
    pytest.importorskip("jax")
    (tmp_path / "keras.json").write_text(json.dumps({"backend": "jax"}))
    environment = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, timeout=300,
                         env=dict(environment, PYTHONPATH=PYTHONPATH, KERAS_HOME=str(tmp_path)),
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "backend: jax" in out.stdout


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
