#!/usr/bin/env bash
# Installs what is missing (Debian packages), builds lepard with its tests and
# benchmarks, and runs the whole test suite through ctest.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh -L core         # extra arguments go to ctest (here: only the core layer)
#
# Environment: BUILD_DIR (default build), CMAKE_BUILD_TYPE (default Release),
# CMAKE_ARGS (extra configure arguments, e.g. -DTorch_DIR=/path/to/libtorch/share/cmake/Torch).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/common.sh

ensure_packages "${LEPARD_PACKAGES[@]}"
build_dir="${BUILD_DIR:-build}"
# shellcheck disable=SC2086
lepard_build "$build_dir" -DLEPARD_BUILD_TESTS=ON -DLEPARD_BUILD_BENCH=ON -DLEPARD_BUILD_APPS=ON ${CMAKE_ARGS:-}
ensure_gltf_validator "$build_dir/tools"
lepard_log "running the test suite"
cd "$build_dir"
ctest --output-on-failure "$@"
