#!/usr/bin/env bash
# Installs every Debian 12 package poshd needs to build, test, fuzz and run.
# Skips what is already installed; safe to run again.
set -euo pipefail
PKGS=(
  build-essential cmake pkg-config git ca-certificates
  libuv1-dev libcurl4-openssl-dev libssl-dev openssl libsimdjson-dev
  libprotobuf-dev protobuf-compiler libgrpc++-dev protobuf-compiler-grpc
  libgtest-dev libgmock-dev libbenchmark-dev libidn2-dev libsystemd-dev zlib1g-dev
  clang libclang-rt-14-dev clang-format abigail-tools
  python3 python3-cryptography python3-grpcio python3-grpc-tools python3-prometheus-client
  libtomlplusplus-dev scdoc nginx-light systemd curl
  lua5.4 liblua5.4-dev prosody lua-unbound python3-slixmpp
  libc-ares-dev libexpat1-dev dnsmasq
  libhiredis-dev redis-server
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
# Prosody is installed here only as a test peer (tests/prosody): Debian starts and enables its
# service, which would hold *:5222/*:5269 that the test's own instances need. When this script
# installed it just now, keep that service off; a Prosody that was already there is left alone.
if [[ " ${missing[*]} " == *" prosody "* ]] && [ -d /run/systemd/system ]; then
  echo "install-deps: prosody was installed as a test dependency: disabling its service"
  $SUDO systemctl disable --now prosody.service || true
fi
