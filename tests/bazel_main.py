"""The main of every `py_test` target (BUILD): runs the test file named first in the
arguments as a script, as `python <file>` would (its footer calls pytest.main), after
importing TensorFlow and Keras as the pipelines do, without the JAX, scikit-learn and
matplotlib that Keras' import pulls in (pipelines/frameworks.py): measured 1.2-2.4 s
of each target's start-up on the 2-core machine, for ~95 targets. The test file's own
imports come after, so this has to run before them: conftest.py is imported later."""

import os
import runpy
import sys

if __name__ == "__main__":
    # Python put this file's folder first on the path: tests/ holds a `pipelines`
    # package of its own (tests/pipelines), which would hide the real one.
    del sys.path[0]

from pipelines.frameworks import import_frameworks, keras_backend_is_tensorflow  # noqa: E402


def main():
    path = os.path.abspath(sys.argv[1])
    sys.argv = [path] + sys.argv[2:]
    sys.path.insert(0, os.path.dirname(path))  # as for `python <file>`
    if keras_backend_is_tensorflow():
        import_frameworks()
    runpy.run_path(path, run_name="__main__")


if __name__ == "__main__":
    main()
