#!/usr/bin/env bash
# Installs the build into a staging root, then: builds the C++ example against the
# installed CMake package (shared and static), the C examples (synchronous and asynchronous)
# with pkg-config, runs them against the installed poshd, and verifies the installed unit.
#   install_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
tmp=$(mktemp -d /tmp/posh-install.XXXXXX)
daemon_pid=
cleanup() {
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build/CMakeCache.txt")
libdir=$(sed -n 's/^CMAKE_INSTALL_LIBDIR:PATH=//p' "$build/CMakeCache.txt")
libdir=${libdir:-lib}  # e.g. lib/x86_64-linux-gnu when the prefix is /usr
DESTDIR=$tmp/root cmake --install "$build" >/dev/null
root=$tmp/root$prefix
for f in sbin/poshd bin/poshctl include/posh/client.h include/posh/posh_client.h \
         $libdir/pkgconfig/poshclient.pc $libdir/cmake/poshclient/poshclientConfig.cmake; do
  [ -e "$root/$f" ] || fail "not installed: $f"
done
ls "$root/$libdir"/libposhclient.so.* >/dev/null || fail "shared libposhclient not installed"
# docs/CLIENT_ABI.md: the SONAME's link, and public headers free of generated protobuf code.
[ -L "$root/$libdir/libposhclient.so.1" ] || fail "libposhclient.so.1 (the SONAME) not installed"
[ ! -e "$root/include/posh/v1" ] || fail "generated posh/v1 headers installed"
[ -e "$root/$libdir/libposhclient.a" ] || fail "static libposhclient not installed"
echo "ok: installed files"

# The installed daemon on a private socket (no network needed: .invalid never resolves).
sock=$tmp/poshd.sock
LD_LIBRARY_PATH=$root/$libdir "$root/sbin/poshd" --socket "$sock" --fetch-timeout 3 \
  --log-level warn >"$tmp/poshd.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
[ -S "$sock" ] || { cat "$tmp/poshd.log"; fail "installed poshd did not listen"; }

# 1. CMake package.
cmake -S "$src/tests/install/consumer" -B "$tmp/cmake-consumer" \
  -DCMAKE_PREFIX_PATH="$root" -DEXAMPLE_SOURCE="$src/client-lib/examples/lookup.cc" >/dev/null
cmake --build "$tmp/cmake-consumer" -j2 >/dev/null
for v in shared static; do
  set +e
  LD_LIBRARY_PATH=$root/$libdir "$tmp/cmake-consumer/consumer_$v" nothing.invalid "$sock"
  rc=$?
  set -e
  [ "$rc" = 2 ] || fail "CMake consumer ($v): exit $rc, want 2 (retrieval error)"
  LD_LIBRARY_PATH=$root/$libdir "$tmp/cmake-consumer/consumer_$v" "bad domain" "$sock" && fail "bad domain accepted"
done
echo "ok: find_package(poshclient) consumer, shared and static"

# 2. pkg-config, C.
flags=$(PKG_CONFIG_PATH=$root/$libdir/pkgconfig pkg-config --define-variable=prefix="$root" \
  --cflags --libs poshclient)
cc -std=c11 -Wall -Wextra -Werror "$src/client-lib/examples/verify.c" -o "$tmp/c-consumer" $flags
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=x.invalid \
  -days 2 -keyout "$tmp/k.pem" -outform DER -out "$tmp/leaf.der" 2>/dev/null
set +e
LD_LIBRARY_PATH=$root/$libdir "$tmp/c-consumer" nothing.invalid "$tmp/leaf.der" "$sock"
rc=$?
LD_LIBRARY_PATH=$root/$libdir "$tmp/c-consumer" nothing.invalid "$tmp/leaf.der" "$tmp/none.sock"
rc_down=$?
set -e
[ "$rc" = 2 ] || fail "pkg-config C consumer: exit $rc, want 2 (verdict error)"
[ "$rc_down" = 69 ] || fail "pkg-config C consumer without daemon: exit $rc_down, want 69"
# The asynchronous API (poll() loop on the client's descriptor).
cc -std=c11 -Wall -Wextra -Werror "$src/client-lib/examples/verify_async.c" \
  -o "$tmp/c-async-consumer" $flags
set +e
POSHD_SOCKET=$sock LD_LIBRARY_PATH=$root/$libdir "$tmp/c-async-consumer" "$tmp/leaf.der" \
  nothing.invalid nothing-either.invalid
rc=$?
POSHD_SOCKET=$tmp/none.sock LD_LIBRARY_PATH=$root/$libdir "$tmp/c-async-consumer" \
  "$tmp/leaf.der" nothing.invalid
rc_down=$?
set -e
[ "$rc" = 2 ] || fail "async C consumer: exit $rc, want 2 (verdict error)"
[ "$rc_down" = 69 ] || fail "async C consumer without daemon: exit $rc_down, want 69"
echo "ok: pkg-config C consumer (synchronous and asynchronous)"

# 3. The installed unit verifies (paths rewritten into the staging root).
if command -v systemd-analyze >/dev/null; then
  unit=$root/lib/systemd/system/poshd.service
  [ -f "$unit" ] || fail "unit not installed"
  sed "s#$prefix/#$root/#g" "$unit" >"$tmp/poshd.service"
  systemd-analyze verify --man=no "$tmp/poshd.service" || fail "systemd-analyze verify"
  echo "ok: systemd-analyze verify poshd.service"
fi
echo "install test passed"
