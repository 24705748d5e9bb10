#!/usr/bin/env bash
# Installs the Debian packages Postroom needs (as root) or prints the exact
# apt-get line to run. Usage: deps.sh build|test|bench
set -euo pipefail
BUILD_PKGS="gcc make pkg-config libev-dev libssl-dev liblmdb-dev libsodium-dev zlib1g-dev openssl"
TEST_PKGS="$BUILD_PKGS clang libclang-rt-14-dev libcmocka-dev python3 python3-pytest swaks curl fetchmail isync getmail6 lmdb-utils procps"
# swaks needs these (Recommends, which --no-install-recommends skips) for TLS and AUTH.
TEST_PKGS="$TEST_PKGS libnet-ssleay-perl libio-socket-ssl-perl libauthen-sasl-perl"
BENCH_PKGS="$BUILD_PKGS procps"
# outbound delivery (mtad): c-ares for DNS; the loopback test rig (DNS server, SMTP sinks)
BUILD_PKGS="$BUILD_PKGS libc-ares-dev"; TEST_PKGS="$TEST_PKGS libc-ares-dev python3-dnslib"; BENCH_PKGS="$BENCH_PKGS libc-ares-dev"
TEST_PKGS="$TEST_PKGS python3-dkim python3-nacl"   # queue engineer: DKIM checks with dkimpy (Ed25519 needs nacl)
TEST_PKGS="$TEST_PKGS python3-milter rspamd"   # milter engineer: the test milter (pymilter) and a real rspamd in milter mode
TEST_PKGS="$TEST_PKGS python3-authres python3-spf"   # inbound checks: A-R parsing, SPF cross-check
TEST_PKGS="$TEST_PKGS opendkim opendmarc clamav-daemon clamav-milter"   # milter interop: the real milters, started privately by the tests
# DMARC finds organizational domains in the Public Suffix List (read at start).
BUILD_PKGS="$BUILD_PKGS publicsuffix"; TEST_PKGS="$TEST_PKGS publicsuffix"
case "${1:-build}" in
  build) want=$BUILD_PKGS ;;
  test)  want=$TEST_PKGS ;;
  bench) want=$BENCH_PKGS ;;
  *) echo "usage: $0 build|test|bench" >&2; exit 2 ;;
esac
missing=()
for p in $want; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
  echo "deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
else
  echo "deps: missing Debian packages. Run:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
