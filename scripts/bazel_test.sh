#!/usr/bin/env bash
# Runs `bazel test //...` offline against the project's virtualenv.
# Writes .bazelrc.user with this machine's absolute paths, then runs Bazel.
# Needs Debian's bazel-bootstrap, bazel-rules-java, bazel-platforms, bazel-skylib
# (scripts/install.sh --with-bazel installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
venv=${VENV:-$root/.venv}
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
shared=$(cd "$root/.." && pwd)/shared/data
# What every target may share (tests/bazel_main.py: the TensorFlow core-op lists, named
# by a digest of the installation): under /tmp, which Bazel's sandbox leaves writable;
# this account's own folder, private, or nothing is shared.
test_cache=/tmp/keras_bert_app-bazel-$(id -u)
mkdir -p -m 700 "$test_cache" 2>/dev/null || true
shared_cache_env=""
if [ -d "$test_cache" ] && [ -O "$test_cache" ] && [ ! -L "$test_cache" ]; then
  chmod 700 "$test_cache"
  shared_cache_env="test --test_env=KBA_TEST_SHARED_CACHE=$test_cache"
fi
cat > .bazelrc.user <<RC
common --override_repository=rules_cc=$root/third_party/bazel/rules_cc
common --override_repository=remote_coverage_tools=$root/third_party/bazel/remote_coverage_tools
common --override_repository=rules_java=/usr/share/bazel/rules/java
common --override_repository=platforms=/usr/share/bazel/tools/platforms
common --override_repository=bazel_skylib=/usr/share/bazel/tools/skylib
build --python_path=$venv/bin/python
test --test_env=PYTHONPATH=$site
test --test_env=KBA_SHARED_DATA=$shared
$shared_cache_env
RC
exec bazel test "$@" //...
