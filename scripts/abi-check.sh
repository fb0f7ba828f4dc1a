#!/usr/bin/env bash
# libposhclient's ABI check (docs/CLIENT_ABI.md): compares the shared library of a build
# against the ABI of the last release, client-lib/abi/libposhclient.abi, with libabigail
# (Debian's abigail-tools). Only what the public headers (client-lib/include/posh) declare
# counts. Additions pass (they go into a new version node of libposhclient.map); any
# other change -- a function removed or changed, a public type changed, the SONAME -- fails.
#   scripts/abi-check.sh BUILD_DIR              check (the build needs debug info: -g)
#   scripts/abi-check.sh --update BUILD_DIR     write a new baseline (at a release only)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
update=0
if [ "${1:-}" = --update ]; then
  update=1
  shift
fi
[ $# = 1 ] || { echo "usage: $0 [--update] BUILD_DIR" >&2; exit 64; }
build=$1
lib=$build/client-lib/libposhclient.so
baseline=$src/client-lib/abi/libposhclient.abi
headers=$src/client-lib/include/posh
for tool in abidw abidiff; do
  command -v $tool >/dev/null || { echo "$0: $tool not found (apt install abigail-tools)" >&2; exit 69; }
done
[ -e "$lib" ] || { echo "$0: $lib not built" >&2; exit 66; }
lib=$(readlink -f "$lib")
if ! readelf -S "$lib" | grep -q '\.debug_info'; then
  echo "$0: $lib has no debug info (build with RelWithDebInfo or Debug)" >&2
  exit 66
fi

# The same options write the baseline and read the build: exported interfaces only, types
# of the public headers only, no locations or paths (they differ from one checkout to the
# next), ids from type hashes (stable across runs).
# No suppression file: libabigail's regexps are easy to get wrong in a way that silently
# filters real changes (tried: a type regexp hid a public struct that grew).
abidw_opts=(--headers-dir "$headers" --drop-private-types --exported-interfaces-only
  --drop-undefined-syms --no-corpus-path --no-comp-dir-path --no-show-locs
  --type-id-style hash)

if [ $update = 1 ]; then
  abidw "${abidw_opts[@]}" --out-file "$baseline" "$lib"
  echo "wrote $baseline from $lib"
  exit 0
fi

current=$(mktemp /tmp/libposhclient-abi.XXXXXX)
trap 'rm -f "$current"' EXIT
# ABI_CHECK_HEADERS: the public headers the library was compiled with, when not this
# checkout's (an experiment with an edited copy).
[ -n "${ABI_CHECK_HEADERS:-}" ] && abidw_opts[1]=$ABI_CHECK_HEADERS
abidw "${abidw_opts[@]}" --out-file "$current" "$lib"
set +e
# --no-added-syms: additions are compatible and do not set the exit bits.
abidiff --no-added-syms "$baseline" "$current"
rc=$?
set -e
# abidiff's exit status is a bit field: 1 error, 2 usage error, 4 ABI change, 8 incompatible
# ABI change. Any of them fails: a change that libabigail cannot prove incompatible (a
# public struct that grew, say) breaks consumers compiled against the old layout all the same.
if [ $rc = 0 ]; then
  echo "ok: libposhclient's ABI matches client-lib/abi/libposhclient.abi"
  exit 0
fi
if (( rc & 3 )); then
  echo "FAIL: abidiff could not compare (exit $rc)" >&2
  exit 1
fi
what="an ABI change"
(( rc & 8 )) && what="an INCOMPATIBLE ABI change"
cat >&2 <<MSG
FAIL: libposhclient has $what against client-lib/abi/libposhclient.abi (abidiff exit $rc).
If this is unintended, restore the public API. If it is deliberate (docs/CLIENT_ABI.md):
  - an incompatible change needs a new SONAME: bump POSHCLIENT_SOVERSION (and the major of
    POSHCLIENT_VERSION) in client-lib/CMakeLists.txt and start a new version node
    (POSHCLIENT_2) in client-lib/libposhclient.map;
  - then, at the release, record the new ABI as the baseline:
      scripts/abi-check.sh --update $build
    and commit client-lib/abi/libposhclient.abi with the release.
MSG
exit 1
