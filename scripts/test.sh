#!/usr/bin/env bash
# Installs dependencies, builds everything, and runs the whole test suite with CTest.
#   scripts/test.sh                 # normal build in build-test/
#   SANITIZE=asan scripts/test.sh   # AddressSanitizer + UBSan build in build-asan/
#   SANITIZE=tsan scripts/test.sh   # ThreadSanitizer build in build-tsan/ (concurrency tests)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/install-deps.sh"
mode=${SANITIZE:-none}
normal_flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_INSTALL_SYSCONFDIR=/etc)
case "$mode" in
  none) build=${BUILD_DIR:-$root/build-test}; flags=("${normal_flags[@]}") ;;
  asan) build=${BUILD_DIR:-$root/build-asan}; flags=(-DCMAKE_BUILD_TYPE=Debug -DPOSH_SANITIZE=ON) ;;
  tsan) build=${BUILD_DIR:-$root/build-tsan}; flags=(-DCMAKE_BUILD_TYPE=Debug -DPOSH_TSAN=ON) ;;
  *) echo "SANITIZE must be asan or tsan" >&2; exit 64 ;;
esac
if [ "$mode" = tsan ]; then
  # The client tests under ThreadSanitizer talk to the normal build's poshd (an instrumented
  # daemon would only cost build time: TSan checks the client library's threads here, the
  # daemon's concurrency is covered by the store and service unit tests).
  normal=${POSHD_BUILD_DIR:-$root/build-test}
  [ -f "$normal/CMakeCache.txt" ] || cmake -S "$root" -B "$normal" "${normal_flags[@]}" >/dev/null
  cmake --build "$normal" -j"${JOBS:-2}" --target poshd poshctl
  flags+=(-DPOSH_IT_POSHD="$normal/daemon/server/poshd" -DPOSH_IT_POSHCTL="$normal/client-lib/poshctl")
fi
# Warnings are errors in our own builds (POSH_WERROR; off by default for packagers).
cmake -S "$root" -B "$build" "${flags[@]}" -DPOSH_WERROR=ON >/dev/null
if [ "$mode" = tsan ]; then
  # ThreadSanitizer runs the tests labelled "concurrency" (the store, the service, and the
  # asynchronous C API of the client library).
  cmake --build "$build" -j"${JOBS:-2}" --target cache_unit_tests server_unit_tests \
    util_unit_tests posh_async_c_api_test
else
  cmake --build "$build" -j"${JOBS:-2}"
fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# tests/tsan.supp: races TSan reports inside gRPC's own (inlined) code, see the file.
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:suppressions=$root/tests/tsan.supp}
label=()
[ "$mode" = tsan ] && label=(-L concurrency)
# The installed-package test links plain consumers: only meaningful without sanitizers. The
# Prosody end-to-end test loads the binding into Debian's uninstrumented Prosody (the binding
# itself runs under ASan in lua.poshclient_binding, with the runtime preloaded).
[ "$mode" = asan ] && label=(-LE "install|soak|prosody")
cd "$build"
ctest --output-on-failure -j"${CTEST_JOBS:-2}" "${label[@]}" ${CTEST_ARGS:-}
