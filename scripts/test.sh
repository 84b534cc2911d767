#!/usr/bin/env bash
# The test suite, as CI runs it:
#   1. every test on the TensorFlow backend, each file as its own `bazel test` target
#      (plain pytest where Bazel is not installed, outside CI);
#   2. the config, layer, model, optimizer and checkpoint tests again under
#      KERAS_BACKEND=jax and torch (the distributed tests run JAX in their own
#      processes already).
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES-}
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}

if command -v bazel >/dev/null 2>&1; then
  echo "== bazel test //... (tensorflow backend)"
  scripts/bazel_test.sh
elif [ "${CI:-}" = "true" ]; then
  echo "bazel is not installed; CI must run bazel test (scripts/install.sh --with-bazel)" >&2
  exit 1
else
  echo "== pytest (tensorflow backend; install Bazel to run the BUILD targets)"
  KERAS_BACKEND=tensorflow "$py" -m pytest -q tests
fi

for backend in jax torch; do
  echo "== pytest config, layers, models, optimizers, checkpoints (KERAS_BACKEND=$backend)"
  KERAS_BACKEND=$backend "$py" -m pytest -q tests/config_test.py tests/layers tests/models \
    tests/text/preprocessing_layer_test.py tests/training/optimizers_test.py \
    tests/training/checkpointing_test.py
done
