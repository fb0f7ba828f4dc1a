#!/bin/bash
# poshctl's bash completion, in real bash: COMP_WORDS/COMP_CWORD/COMP_LINE/COMP_POINT set as
# bash sets them, the completion function called, COMPREPLY compared. Twice: with the
# bash-completion package's helpers (as when installed) and with plain bash.
#
#   poshctl_completion_test.sh COMPLETION_FILE POSHCTL POSHD
set -u
completion=$1 poshctl=$2 poshd=$3
bash_completion=/usr/share/bash-completion/bash_completion
tmp=$(mktemp -d /tmp/posh-compl-XXXXXX)
daemon=
cleanup() {
  [[ -n $daemon ]] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
failures=0

# A poshd whose retrievals fail at once (connection refused): the errors are cached, so
# "cache list" has entries without any network.
sock=$tmp/poshd.sock
"$poshd" --socket "$sock" --connect-to ::127.0.0.1:1 >"$tmp/poshd.log" 2>&1 &
daemon=$!
for _ in $(seq 100); do [[ -S $sock ]] && break; sleep 0.05; done
"$poshctl" --socket "$sock" lookup alpha.example.test >/dev/null
"$poshctl" --socket "$sock" lookup beta.example.test --service xmpp-client >/dev/null
if ! "$poshctl" --socket "$sock" --json cache list | grep -q beta.example.test; then
  echo "FAIL: the test daemon has no cached entries"; cat "$tmp/poshd.log"; exit 1
fi
mkdir -p "$tmp/certs/sub"
touch "$tmp/certs/peer.pem" "$tmp/certs/peer.der" "$tmp/certs/other.txt"

run_cases() {
  local mode=$1
  # complete LINE: the completions (sorted, one line) for LINE with the cursor at its end;
  # words split on blanks as bash does (a trailing blank starts an empty word).
  complete_line() {
    local line=$1
    # bash also breaks words at "=" (COMP_WORDBREAKS): "--opt=value" is "--opt" "=" "value".
    read -r -a COMP_WORDS <<<"${line//=/ = }"
    [[ $line == *" " ]] && COMP_WORDS+=("")
    COMP_WORDS[0]=$poshctl
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMP_LINE="$poshctl ${line#poshctl }"
    COMP_POINT=${#COMP_LINE}
    COMPREPLY=()
    _poshctl poshctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
    printf '%s\n' "${COMPREPLY[@]}" | LC_ALL=C sort | tr '\n' ' ' | sed 's/ $//'
  }
  expect() {  # expect LINE WANT
    local got
    got=$(complete_line "$1" 2>"$tmp/stderr")
    if [[ $got != "$2" ]]; then
      echo "FAIL [$mode] '$1': got '$got', want '$2'"
      failures=$((failures + 1))
    elif [[ -s $tmp/stderr ]]; then
      echo "FAIL [$mode] '$1': wrote to stderr: $(cat "$tmp/stderr")"
      failures=$((failures + 1))
    else
      echo "ok   [$mode] '$1' -> '$got'"
    fi
  }
  expect "poshctl " "cache lookup probe publish stats verify"
  expect "poshctl c" "cache"
  expect "poshctl --" "--help --json --socket --timeout"
  expect "poshctl --json " "cache lookup probe publish stats verify"
  expect "poshctl cache " "evict flush list show"
  expect "poshctl cache s" "show"
  expect "poshctl lookup example.com --" "--help --json --refresh --service --socket --timeout"
  expect "poshctl lookup example.com --service " "xmpp-client xmpp-server"
  expect "poshctl lookup example.com --service xmpp-c" "xmpp-client"
  expect "poshctl lookup example.com --service=xmpp-c" "xmpp-client"
  expect "poshctl lookup example.com --service=" "xmpp-client xmpp-server"
  expect "poshctl publish --format=j" "jwk"
  expect "poshctl verify example.com --" "--cert --help --json --service --socket --timeout"
  expect "poshctl stats --p" "--prometheus"
  expect "poshctl publish --format " "jwk rfc7711"
  expect "poshctl publish --expires " "3600 604800 86400"
  expect "poshctl publish c.pem --f" "--format"
  expect "poshctl cache list --" "--domain --help --json --socket --timeout"
  expect "poshctl cache flush --j" "--json"
  expect "poshctl probe example.com --d" "--direct-tls --dns-server"
  expect "poshctl probe example.com --service " "xmpp-client xmpp-server"
  # Files for --cert and publish.
  (cd "$tmp/certs" && expect "poshctl verify example.com --cert peer." "peer.der peer.pem")
  (cd "$tmp/certs" && expect "poshctl publish peer.d" "peer.der")
  (cd "$tmp/certs" && expect "poshctl --socket s" "sub")
  # Cached domains from the daemon on --socket (anywhere on the line).
  expect "poshctl --socket $sock cache show " "alpha.example.test beta.example.test"
  expect "poshctl --socket $sock cache evict b" "beta.example.test"
  expect "poshctl cache show --socket $sock a" "alpha.example.test"
  expect "poshctl --socket=$sock cache show a" "alpha.example.test"
  expect "poshctl cache show alpha.example.test --socket $sock --s" "--service --socket"
  expect "poshctl --socket $sock cache show alpha.example.test " ""
  POSHD_SOCKET=$sock expect "poshctl cache evict " "alpha.example.test beta.example.test"
  # No daemon there: quietly nothing, at once.
  local t0=$SECONDS
  expect "poshctl --socket $tmp/nobody.sock cache show " ""
  if ((SECONDS - t0 > 2)); then
    echo "FAIL [$mode] an unreachable daemon took $((SECONDS - t0)) s"
    failures=$((failures + 1))
  fi
}

# Each mode in a subshell of its own (its own failure count, returned as exit status).
# shellcheck disable=SC1090,SC2030,SC2031
if [[ -r $bash_completion ]]; then
  (failures=0 && . "$bash_completion" && . "$completion" && run_cases bash-completion
   exit $failures) || failures=$((failures + $?))
  if ! (. "$bash_completion" && . "$completion" && complete -p poshctl | grep -q _poshctl); then
    echo "FAIL: the file does not register _poshctl for poshctl"
    failures=$((failures + 1))
  fi
else
  echo "skip: $bash_completion not installed (Debian package bash-completion)"
fi
# shellcheck disable=SC1090,SC2030,SC2031
(failures=0 && . "$completion" && run_cases plain-bash; exit $failures) ||
  failures=$((failures + $?))

if ((failures > 0)); then
  echo "$failures failure(s)"
  exit 1
fi
echo "all completion cases passed"
