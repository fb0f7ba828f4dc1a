#!/usr/bin/env bash
# Clang's thread-safety analysis over poshd and libposhclient: builds them with clang 14
# (Debug, -DPOSH_WERROR=ON) in build-clang/, where POSH_WARNINGS carries -Wthread-safety
# (top-level CMakeLists.txt), so reading an ABSL_GUARDED_BY member without its lock, or
# loop-thread state without POSH_DCHECK_ON_LOOP, fails the build. Tests are not built.
# Environment: BUILD (build-clang), JOBS (2), CLANG_CC / CLANG_CXX (clang-14 / clang++-14).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build-clang}
jobs=${JOBS:-2}
cc=${CLANG_CC:-clang-14}
cxx=${CLANG_CXX:-clang++-14}
if ! command -v "$cxx" >/dev/null; then
  echo "thread-safety-check: $cxx not found (apt-get install clang-14)" >&2
  exit 2
fi
start=$(date +%s)
CC=$cc CXX=$cxx cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DPOSH_WERROR=ON \
  -DPOSH_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j"$jobs" --target poshd poshclient poshclient_static poshctl
echo "thread-safety-check: clean ($(( $(date +%s) - start )) s)"
