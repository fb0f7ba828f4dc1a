#!/usr/bin/env bash
# libposhclient's export list and SONAME (docs/CLIENT_ABI.md, issue 14): the shared library
# is libposhclient.so.1 and exports only the C API (posh_*) and the C++ API
# (posh::client::*), every symbol under a POSHCLIENT_* version node: nothing of protobuf,
# gRPC, abseil, the generated posh.v1 code or the library's internals.
#   exports_test.sh LIBPOSHCLIENT.so
set -euo pipefail
lib=$1
fail() { echo "FAIL: $*" >&2; exit 1; }

soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = libposhclient.so.1 ] || fail "SONAME is '$soname', want libposhclient.so.1"
echo "ok: SONAME $soname"

# nm -D prints NAME@@VERSION (defined, default version); -C demangles.
syms=$(nm -D --defined-only --with-symbol-versions "$lib" | awk '{print $3}')
[ -n "$syms" ] || fail "no dynamic symbols"
bad=
while IFS= read -r sym; do
  name=${sym%%@*}
  version=${sym#"$name"}
  [ "$name" = POSHCLIENT_1 ] && continue  # the version node itself
  case "$version" in
    @@POSHCLIENT_*) ;;
    *) bad+="  unversioned: $sym"$'\n' ;;
  esac
  case "$name" in
    posh_*) continue ;;
    _Z*) demangled=$(c++filt "$name") ;;
    *) bad+="  not ours: $sym"$'\n'; continue ;;
  esac
  # A function of the C++ API, e.g. "posh::client::Client::Lookup(...)".
  case "$demangled" in
    posh::client::*) ;;
    *) bad+="  not in posh::client: $demangled"$'\n' ;;
  esac
done <<<"$syms"
[ -z "$bad" ] || fail "exported outside the API:"$'\n'"$bad"
echo "ok: $(wc -l <<<"$syms") symbols, all posh_* or posh::client::*, all versioned"

# The API is really there (a version script typo would silently hide it).
for want in posh_client_open posh_client_close posh_lookup posh_lookup_result_free posh_verify \
             posh_verify_result_free posh_client_fd posh_lookup_start posh_verify_start \
             posh_cancel posh_next_completion posh_completion_free posh_pending posh_strerror \
             posh_client_last_error; do
  grep -qx "$want@@POSHCLIENT_1" <<<"$syms" || fail "missing: $want"
done
demangled=$(nm -DC --defined-only "$lib")
for want in 'posh::client::Client::Client(posh::client::ClientOptions)' \
            'posh::client::Client::Lookup(posh::client::LookupRequest const&, posh::client::LookupResult*)' \
            'posh::client::Client::GetStats(posh::client::Stats*)' \
            'posh::client::CallStatus::unreachable() const'; do
  grep -qF "$want" <<<"$demangled" || fail "missing: $want"
done
echo "ok: the C and C++ API are exported"
