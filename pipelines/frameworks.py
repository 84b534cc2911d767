"""TensorFlow and Keras imported for a pipeline without the optional packages they
pull in that no pipeline uses: a second or more of every run's start-up.

`import tensorflow` (2.21) imports Keras too, and with them come JAX when it is
installed (TF Lite's `util` takes its `jit`, for converting JAX functions),
scikit-learn (the `keras.wrappers` scikit-learn estimators) and matplotlib's `pyplot`
(the `keras.visualization` image-gallery plots). Each of those modules guards the
import and sets its name to None when the package is missing. Measured on the 2-core
machine: JAX ~0.3–0.5 s, scikit-learn ~0.4–0.6 s, pyplot ~0.3–0.5 s of a ~3.5–5 s
import. While TensorFlow (and Keras with it) is imported here, those packages look
missing; afterwards they import normally, so `pipelines.plot_logs`' matplotlib works
as before. JAX is hidden only where Keras' backend is TensorFlow (`KERAS_BACKEND`,
else `keras.json`), never from a JAX backend. In a pipeline process the only thing
lost is what no pipeline calls: Keras' scikit-learn wrappers, `plot_image_gallery`
and TF Lite's JAX conversion.

Library users are untouched: only `pipelines/` calls this, before its first import
of the library, and the test suite (tests/bazel_main.py, tests/conftest.py, and the
distributed tests' worker processes: tests/training/run_worker.py, input_worker.py).
"""

import importlib.abc
import json
import os
import sys

# Optional imports of TensorFlow's and Keras' own import, hidden while they run.
HIDDEN = ("sklearn", "matplotlib")
HIDDEN_UNDER_TENSORFLOW_BACKEND = ("jax", "jaxlib")


class _Hidden(importlib.abc.MetaPathFinder):
    """Makes `import <name>` (and its submodules) raise ModuleNotFoundError."""

    def __init__(self, names):
        self.names = tuple(names)

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"{fullname} is not imported while a pipeline "
                                      "starts (pipelines/frameworks.py)", name=fullname)
        return None


def keras_backend_is_tensorflow():
    """Whether Keras will load the TensorFlow backend, read as Keras reads it:
    `KERAS_BACKEND`, else `backend` in `$KERAS_HOME/keras.json` (default
    `~/.keras`), else TensorFlow. An unreadable file counts as not TensorFlow."""
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"] == "tensorflow"
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    path = os.path.join(home, "keras.json")
    if not os.path.exists(path):
        return True
    try:
        with open(path) as f:
            return json.load(f).get("backend", "tensorflow") == "tensorflow"
    except (OSError, ValueError, AttributeError):
        return False


def import_frameworks():
    """Imports TensorFlow and Keras without the optional packages above. Nothing is
    hidden once TensorFlow or one of those packages is imported (a module already in
    `sys.modules` would be used anyway); a no-op after the first call."""
    hidden = HIDDEN + (HIDDEN_UNDER_TENSORFLOW_BACKEND if keras_backend_is_tensorflow()
                       else ())
    finder = None
    if "tensorflow" not in sys.modules and not any(name in sys.modules for name in hidden):
        finder = _Hidden(hidden)
        sys.meta_path.insert(0, finder)
    try:
        import tensorflow  # imports Keras and its backend
        import keras
        del tensorflow, keras  # imported for what the pipeline does next
    finally:
        if finder is not None:
            sys.meta_path.remove(finder)
