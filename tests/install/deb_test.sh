#!/usr/bin/env bash
# Builds the .deb with CPack, installs it, verifies the installed unit and the binaries,
# then removes it. Needs root (dpkg). The build must be configured with
# -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_INSTALL_SYSCONFDIR=/etc (scripts/test.sh does).
#   deb_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
fail() { echo "FAIL: $*" >&2; exit 1; }
prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build/CMakeCache.txt")
[ "$prefix" = /usr ] || fail "configure $build with -DCMAKE_INSTALL_PREFIX=/usr (it is $prefix)"
(cd "$build" && cpack -G DEB >/dev/null)
deb=$(ls -t "$build"/poshd_*.deb | head -n 1)
[ -f "$deb" ] || fail "no .deb produced"
dpkg-deb --info "$deb" | grep -E "Package|Depends"
if dpkg -s poshd >/dev/null 2>&1; then dpkg --purge poshd >/dev/null; fi
dpkg -i "$deb" >/dev/null || { apt-get install -y -f >/dev/null; dpkg -i "$deb" >/dev/null; } || fail "dpkg -i"
trap 'dpkg --purge poshd >/dev/null 2>&1 || true' EXIT
pkg-config --exists poshclient || fail "pkg-config does not find poshclient"
for f in /usr/sbin/poshd /usr/bin/poshctl /usr/lib/systemd/system/poshd.service \
         /etc/poshd/poshd.conf /usr/include/posh/client.h; do
  [ -e "$f" ] || [ -e "${f/\/usr\/lib\//\/lib\/}" ] || fail "missing after install: $f"
done
unit=/usr/lib/systemd/system/poshd.service
[ -f "$unit" ] || unit=/lib/systemd/system/poshd.service
systemd-analyze verify --man=no "$unit" || fail "systemd-analyze verify $unit"
# Issue 12: the node_exporter textfile export, installed beside it and not enabled.
for u in poshd-textfile-metrics.service poshd-textfile-metrics.timer; do
  [ -f "${unit%/*}/$u" ] || fail "missing after install: ${unit%/*}/$u"
  systemd-analyze verify --man=no "${unit%/*}/$u" || fail "systemd-analyze verify $u"
done
if systemctl is-enabled --quiet poshd-textfile-metrics.timer 2>/dev/null; then
  fail "poshd-textfile-metrics.timer is enabled by the package"
fi
getent passwd poshd >/dev/null || fail "sysusers did not create the poshd user"
getent group poshd-clients >/dev/null || fail "sysusers did not create poshd-clients"
/usr/sbin/poshd --version
# Issue 11: the Lua binding on Debian's Lua 5.4 cpath (Prosody's too) and the Prosody module.
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
[ -f "/usr/lib/$multiarch/lua/5.4/poshclient.so" ] || fail "Lua binding not on the Lua 5.4 cpath"
[ -f /usr/share/poshd/prosody/mod_s2s_auth_poshd.lua ] || fail "Prosody module not installed"
if command -v lua5.4 >/dev/null; then
  # With no LUA_CPATH at all, as Prosody under systemd sees it.
  env -u LUA_CPATH -u LUA_CPATH_5_4 lua5.4 -e '
    local p = require "poshclient"
    local c = assert(p.open("/nonexistent/poshd.sock", 1))
    assert(math.type(c:getfd()) == "integer")
    c:close()
    print("lua5.4: require \"poshclient\" ok")' || fail "lua5.4 cannot load the installed binding"
fi
if command -v luac5.4 >/dev/null; then
  luac5.4 -p /usr/share/poshd/prosody/mod_s2s_auth_poshd.lua || fail "module does not parse"
fi
echo "deb test passed: $(basename "$deb")"
