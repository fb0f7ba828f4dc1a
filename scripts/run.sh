#!/usr/bin/env bash
# Installs dependencies, builds poshd, and runs it in the foreground with the default
# configuration (socket: /run/poshd/poshd.sock as root; printed at start).
# Extra arguments are passed to poshd, e.g.: scripts/run.sh --log-level debug
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/install-deps.sh"
build=${BUILD_DIR:-$root/build-release}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPOSH_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j"${JOBS:-2}" --target poshd poshctl
echo "poshctl: $build/client-lib/poshctl"
exec "$build/daemon/server/poshd" "$@"
