#!/usr/bin/env bash
# Runs the commands README.md tells an operator to run on a production host, as written
# (issue 12). The command blocks of the section "Running it on a production host (systemd)"
# are read from README.md at run time, so README and CI cannot drift. Run it from a fresh
# clone (CI is one), as root:
#
#   tests/install/readme_commands.sh
#
# 1. On this machine: the build block, command by command (configure, build, cpack,
#    dpkg -i), with Debian's hardening flags exported as a Debian package build has them
#    (dpkg-buildflags with hardening=+all; CPPFLAGS folded into CFLAGS/CXXFLAGS as debhelper
#    does) and warnings as errors: before the block, its own configure line runs once with
#    -DPOSH_WERROR=ON added (the block's configure then keeps that cache). The flags and
#    -Werror only add ways to fail, so an operator's plain build passes when this one does.
#    Then: every path of the README's "What is installed" table exists, the installed
#    binaries are hardened (PIE, RELRO, BIND_NOW, stack protector, fortified calls), and the
#    package is purged again.
# 2. Under a live systemd (../shared/tools/systemd-sandbox, a throw-away root): the build
#    block's `dpkg -i` (the package's postinst must start poshd), then the blocks of
#    systemctl/journalctl/systemd-analyze/usermod commands in README order; then, the
#    package purged and its user and group deleted, the install-from-the-build-tree block
#    and those blocks again: poshd must come up the same way.
# README_PLAIN=1 builds exactly as an operator would (no exported flags, no -Werror).
set -euo pipefail

# The command blocks (4-space indented) of README's production section, in order, one file
# each in $1 (1, 2, ...), and $1/kinds: "N KIND" per block. KIND is build (has `cmake -S`),
# tree-install (has `cmake --install`) or live (only systemctl, journalctl, systemd-analyze
# and usermod: they need a live systemd). Anything else stops here: a new kind of command in
# that section must be given its place in this script.
extract_blocks() {
  python3 - "$1" <<'PY'
import os, sys
out = sys.argv[1]
lines = open("README.md", encoding="utf-8").read().split("\n")
try:
    start = next(i for i, l in enumerate(lines) if l.startswith("## Running it on a production host"))
except StopIteration:
    sys.exit("README.md: no section '## Running it on a production host'")
end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
blocks, cur, prev_blank = [], None, True
for l in lines[start + 1:end]:
    if l.startswith("    ") and (cur is not None or prev_blank):
        if cur is None:
            cur = []
            blocks.append(cur)
        cur.append(l[4:])
    elif not l.strip() and cur is not None:
        cur.append("")
    else:
        cur = None
    prev_blank = not l.strip()
LIVE = {"systemctl", "journalctl", "systemd-analyze", "usermod"}
kinds = []
for n, b in enumerate(blocks, 1):
    text = "\n".join(b).strip() + "\n"
    words = {l.split()[0] for l in text.splitlines() if l.strip()}
    if "cmake -S" in text:
        kind = "build"
    elif "cmake --install" in text:
        kind = "tree-install"
    elif words <= LIVE:
        kind = "live"
    else:
        sys.exit("README.md, production section: block %d is new to tests/install/readme_commands.sh "
                 "(give it its place there):\n%s" % (n, text))
    kinds.append(kind)
    with open(os.path.join(out, str(n)), "w") as f:
        f.write(text)
for need in ("build", "tree-install", "live"):
    if need not in kinds:
        sys.exit("README.md, production section: no %s block" % need)
for once in ("build", "tree-install"):
    if kinds.count(once) > 1:
        sys.exit("README.md, production section: more than one %s block" % once)
with open(os.path.join(out, "kinds"), "w") as f:
    f.writelines("%d %s\n" % (n, k) for n, k in enumerate(kinds, 1))
PY
}
block_of() { awk -v k="$2" '$2 == k {print $1}' "$1/kinds"; }  # block_of DIR KIND: numbers

# Runs a block's commands one by one, as written (a line ending in "\" continues), each
# echoed with its exit status and duration; stops at the first that fails.
run_block() {
  local line cmd="" t rc
  while IFS= read -r line || [ -n "$line" ]; do
    if [[ $line == *\\ ]]; then cmd+="${line%\\}"; continue; fi
    cmd+=$line
    if [[ -n ${cmd// /} ]]; then
      echo "+ $cmd"
      t=$(date +%s)
      set +e
      bash -o pipefail -c "$cmd"
      rc=$?
      set -e
      echo "  (exit $rc, $(($(date +%s) - t)) s)"
      [ "$rc" = 0 ] || { echo "FAIL: README command failed: $cmd" >&2; return 1; }
    fi
    cmd=""
  done <"$1"
}

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "PASS: $*"; }
active_running() {
  [ "$(systemctl show -p ActiveState --value poshd)/$(systemctl show -p SubState --value poshd)" = active/running ]
}
wait_active() {
  for _ in $(seq 100); do active_running && return 0; sleep 0.2; done
  systemctl status poshd --no-pager -l | head -n 30
  journalctl -u poshd --no-pager -o cat | tail -n 30
  return 1
}

# The live blocks, in README order, then what they promise.
run_live_blocks() {
  local n user
  for n in $(block_of "$1" live); do run_block "$1/$n"; done
  wait_active || fail "poshd not active after the README's systemctl commands"
  user=$(ps -o user= -p "$(systemctl show -p MainPID --value poshd)" | tr -d ' ')
  [ "$user" = poshd ] || fail "poshd runs as '$user'"
  [ -S /run/poshd/poshd.sock ] || fail "no /run/poshd/poshd.sock"
  pass "README's systemctl/journalctl/systemd-analyze commands: poshd active (running) as user poshd"
  if cat "$1"/[0-9]* | grep -q '^usermod -aG poshd-clients prosody'; then
    id -nG prosody | grep -qw poshd-clients || fail "prosody is not in poshd-clients"
    pass "prosody is in poshd-clients"
  fi
}

if [ "${1:-}" = --inside ]; then
  # ---- 2. inside the sandbox (PID 1 is systemd); the current directory is the checkout.
  [ "$(cat /proc/1/comm)" = systemd ] || fail "--inside: PID 1 is not systemd"
  # A checkout under /tmp or /run is bind-mounted read-only in the sandbox, but
  # `cmake --install build` writes build/install_manifest.txt: lay a throw-away writable
  # layer over the checkout (this mount namespace only) so the command runs as written.
  if ! touch .readme-commands-probe 2>/dev/null; then
    mkdir -p /tmp/checkout-rw/upper /tmp/checkout-rw/work
    mount -t overlay readme-checkout \
      -o "lowerdir=$PWD,upperdir=/tmp/checkout-rw/upper,workdir=/tmp/checkout-rw/work" "$PWD" \
      || fail "cannot make the read-only checkout writable in the sandbox"
    cd "$PWD"  # enter the overlay mounted over the current directory
  fi
  rm -f .readme-commands-probe
  blocks=/tmp/readme-blocks && mkdir -p "$blocks" && extract_blocks "$blocks"
  # The build block ran outside (build, cpack); its install step runs here, as written.
  install=$(grep -o 'dpkg -i [^#;&|]*' "$blocks/$(block_of "$blocks" build)" | head -n 1)
  [ -n "$install" ] || fail "README's build block has no dpkg -i"
  echo "$install" >"$blocks/package-install"
  run_block "$blocks/package-install"
  wait_active || fail "the package's postinst did not start poshd under systemd"
  pass "dpkg -i under systemd: the postinst enabled and started poshd"
  out=$(run_live_blocks "$blocks" 2>&1) || { echo "$out"; exit 1; }
  echo "$out"
  figures=$(grep -c "Overall exposure level" <<<"$out" || true)
  analyses=$(cat "$blocks"/[0-9]* | grep -c '^systemd-analyze security' || true)
  [ "$figures" = "$analyses" ] || fail "$analyses systemd-analyze security commands, $figures figures"
  pass "systemd-analyze security: $(grep "Overall exposure level" <<<"$out" | sed 's/^.*poshd.service: //' | paste -sd ' ' -) (live, offline)"

  echo "-- the package purged (and its user and group): installing from the build tree"
  dpkg --purge poshd >/dev/null
  ! systemctl is-active --quiet poshd || fail "poshd still active after dpkg --purge"
  userdel poshd 2>/dev/null || true
  groupdel poshd-clients 2>/dev/null || true
  run_block "$blocks/$(block_of "$blocks" tree-install)"
  getent passwd poshd >/dev/null && getent group poshd-clients >/dev/null \
    || fail "tree-install block: no poshd user or poshd-clients group"
  run_live_blocks "$blocks" >"$blocks/tree.out" 2>&1 || { cat "$blocks/tree.out"; exit 1; }
  grep -E "^(\+ |PASS)" "$blocks/tree.out"
  pass "installed from the build tree: the same commands bring poshd up"
  exit 0
fi

# ---- 1. on this machine
script=$(readlink -f "$0")
root=$(cd "$(dirname "$script")/../.." && pwd)
cd "$root"
began=$(date +%s)
blocks=$(mktemp -d /tmp/readme-blocks.XXXXXX)
cleanup() {
  rm -rf "$blocks"
  if dpkg-query -W -f='${Status}' poshd 2>/dev/null | grep -q "ok installed"; then
    dpkg --purge poshd >/dev/null || true
  fi
}
trap cleanup EXIT
extract_blocks "$blocks"
echo "README, production section: the commands CI runs"
while read -r n kind; do sed "s/^/  $n $kind | /" "$blocks/$n"; done <"$blocks/kinds"

[ -e build ] && echo "note: build/ exists and is reused (CI starts from a fresh clone)"
if [ -z "${README_PLAIN:-}" ]; then
  export DEB_BUILD_MAINT_OPTIONS=hardening=+all
  cppflags=$(dpkg-buildflags --get CPPFLAGS)
  CFLAGS="$(dpkg-buildflags --get CFLAGS) $cppflags"
  CXXFLAGS="$(dpkg-buildflags --get CXXFLAGS) $cppflags"
  LDFLAGS=$(dpkg-buildflags --get LDFLAGS)
  export CFLAGS CXXFLAGS LDFLAGS
  echo "Debian build flags: CXXFLAGS=$CXXFLAGS"
  echo "                    LDFLAGS=$LDFLAGS"
  configure=$(grep -m 1 '^cmake -S' "$blocks/$(block_of "$blocks" build)" | sed 's/[[:space:]]#.*$//')
  echo "+ $configure -DPOSH_WERROR=ON      (first, so that warnings are errors)"
  bash -o pipefail -c "$configure -DPOSH_WERROR=ON" >/dev/null
fi
run_block "$blocks/$(block_of "$blocks" build)"
pass "README build block ($(($(date +%s) - began)) s)"

deb=$(ls -t build/poshd_*.deb | head -n 1)
dpkg-query -W -f='${Status}' poshd 2>/dev/null | grep -q "ok installed" \
  || fail "poshd not installed after the build block"
pass "package $(basename "$deb") installed"
grep -q '^CMAKE_BUILD_TYPE:[A-Z]*=Release$' build/CMakeCache.txt || fail "build/ is not a Release build"
if [ -z "${README_PLAIN:-}" ]; then
  grep -q '^POSH_WERROR:BOOL=ON$' build/CMakeCache.txt || fail "POSH_WERROR is not on in build/"
  cmd=$(python3 -c 'import json; print(next(e["command"] for e in json.load(open("build/compile_commands.json")) if e["file"].endswith("daemon/server/main.cc")))')
  for flag in -Werror -D_FORTIFY_SOURCE=2 -fstack-protector-strong -Werror=format-security -O3; do
    [[ " $cmd " == *" $flag "* ]] || fail "daemon/server/main.cc was not compiled with $flag"
  done
  pass "compiled with -Werror and Debian's hardening flags"
fi

# Every path of the README's "What is installed" table is there ({a,b} and <multiarch>
# expanded; `.a` and `man ...` entries checked as the library's archive and the manuals).
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
paths=$(sed -n '/^## Running it on a production host/,/^## /p' README.md | grep '^| `' | cut -d'|' -f2 \
  | python3 -c '
import re, sys
for path in re.findall(r"`(/[^`]*)`", sys.stdin.read()):
    m = re.search(r"\{([^{}]*)\}", path)
    for alt in (m.group(1).split(",") if m else [None]):
        print(path if alt is None else path[:m.start()] + alt + path[m.end():])')
[ -n "$paths" ] || fail "README: no table of installed paths"
n=0
for p in $paths; do
  p=${p//<multiarch>/$multiarch}
  [ -e "$p" ] || fail "README says $p is installed; it is not"
  n=$((n + 1))
done
[ -e "/usr/lib/$multiarch/libposhclient.a" ] || fail "no /usr/lib/$multiarch/libposhclient.a"
for page in man8/poshd.8 man1/poshctl.1; do
  ls /usr/share/man/$page* >/dev/null 2>&1 || fail "no manual /usr/share/man/$page"
done
pass "the $n paths of README's table are installed, the static library and both manuals too"

# The installed binaries carry the hardening (PIE, RELRO, BIND_NOW, stack protector, FORTIFY).
if [ -z "${README_PLAIN:-}" ]; then
  for f in /usr/sbin/poshd /usr/bin/poshctl "/usr/lib/$multiarch/libposhclient.so"; do
    f=$(readlink -f "$f")
    h=$(readelf -W -h -l -d "$f")
    grep -q 'Type:.*DYN' <<<"$h" || fail "$f: not PIE/shared"
    grep -q 'GNU_RELRO' <<<"$h" || fail "$f: no RELRO"
    grep -qE 'BIND_NOW|FLAGS_1.*NOW' <<<"$h" || fail "$f: no BIND_NOW"
    syms=$(readelf -W --dyn-syms "$f")
    grep -q '__stack_chk_fail' <<<"$syms" || fail "$f: no stack protector"
    # _FORTIFY_SOURCE: checked calls where sizes are known (the library has none to check).
    [[ $f == *.so* ]] || grep -qE '__[a-z]+_chk@' <<<"$syms" || fail "$f: no fortified calls"
  done
  pass "poshd, poshctl, libposhclient: PIE, RELRO, BIND_NOW, stack protector; FORTIFY_SOURCE calls"
fi
dpkg --purge poshd >/dev/null
pass "on this machine: done in $(($(date +%s) - began)) s"

# ---- 2. under a live systemd
sandbox=${SYSTEMD_SANDBOX:-$root/../shared/tools/systemd-sandbox}
[ -x "$sandbox" ] || fail "no $sandbox"
t=$(date +%s)
SANDBOX_QUIET=1 SANDBOX_TIMEOUT=${SANDBOX_TIMEOUT:-300} "$sandbox" "$script" --inside \
  || fail "README commands under systemd (sandbox)"
pass "README commands under systemd ($(($(date +%s) - t)) s)"
echo "README commands: all passed in $(($(date +%s) - began)) s"
