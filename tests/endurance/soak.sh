#!/bin/sh
# Soak test (issue 6): 64 concurrent clients for DURATION_SECONDS (default 600) against a
# real poshd and the hostile test origin; see soak.py and docs/ENDURANCE.md.
#
#   tests/endurance/soak.sh [DURATION_SECONDS] [--poshd PATH] [--workdir DIR] [soak.py options]
#
# Default daemon: build-rel/daemon/server/poshd (or $POSHD). Exit 0 = pass.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
duration=600
case "${1:-}" in
  ''|-*) ;;
  *) duration=$1; shift ;;
esac
poshd=${POSHD:-$here/../../build-rel/daemon/server/poshd}
for a in "$@"; do
  case "$a" in --poshd|--poshd=*) poshd= ;; esac
done
if [ -n "$poshd" ]; then
  set -- --poshd "$poshd" "$@"
fi
exec /usr/bin/python3 "$here/soak.py" --duration "$duration" "$@"
