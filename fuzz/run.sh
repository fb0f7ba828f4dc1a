#!/usr/bin/env bash
# Runs every libFuzzer target for a bounded time and fails on the first crash.
# Usage: fuzz/run.sh BUILD_DIR [SECONDS_PER_TARGET]   (see docs/FUZZING.md)
set -euo pipefail

if [[ $# -lt 1 ]]; then
  echo "usage: $0 BUILD_DIR [SECONDS_PER_TARGET]" >&2
  exit 64
fi
build_dir=$(cd "$1" && pwd)
seconds=${2:-20}
here=$(cd "$(dirname "$0")" && pwd)
targets=(fuzz_document fuzz_jwk_cert fuzz_domain fuzz_wire fuzz_metrics_http fuzz_xmpp_stream)

# New corpus entries go to a scratch directory; the checked-in seeds are read only.
work=${POSH_FUZZ_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/posh-fuzz.XXXXXX")}
echo "work directory (new inputs, crash artifacts): $work"

status=0
for t in "${targets[@]}"; do
  bin="$build_dir/fuzz/$t"
  if [[ ! -x "$bin" ]]; then
    echo "missing $bin: build with -DPOSH_FUZZ=ON (docs/FUZZING.md)" >&2
    exit 2
  fi
  mkdir -p "$work/$t/corpus" "$work/$t/artifacts"
  args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536
        -print_final_stats=1 -artifact_prefix="$work/$t/artifacts/")
  if [[ $t == fuzz_document ]]; then
    args+=(-dict="$here/dict/posh.dict")
  fi
  echo "=== $t for ${seconds}s"
  if ! "$bin" "${args[@]}" "$work/$t/corpus" "$here/corpus/$t" >"$work/$t/log" 2>&1; then
    echo "FAIL: $t crashed; log: $work/$t/log; artifacts:" >&2
    ls -l "$work/$t/artifacts" >&2 || true
    tail -n 60 "$work/$t/log" >&2
    status=1
  else
    grep -E "stat::number_of_executed_units|stat::average_exec_per_sec" "$work/$t/log" | sed "s/^/  /" || true
    echo "  ok ($(ls "$work/$t/corpus" | wc -l) new corpus entries)"
  fi
done
exit $status
