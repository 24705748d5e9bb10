#!/usr/bin/env bash
# Builds bench/conn_mem against an optimized libcommon and reports the
# memory per idle connection, plain and TLS. Usage: bench/conn_mem.sh [N]
set -eu
cd "$(dirname "$0")/.."
B=build/conn_mem
make --no-print-directory BUILD=$B $B/lib/libcommon.a >/dev/null
cc -std=c11 -D_GNU_SOURCE -O2 -Icommon -o $B/conn_mem bench/conn_mem.c \
  $B/lib/libcommon.a -lev -lsodium -lssl -lcrypto -lz -lcares -lpthread
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=bench \
  -keyout "$tmp/key.pem" -out "$tmp/cert.pem" >/dev/null 2>&1
/usr/bin/python3 bench/conn_mem.py $B/conn_mem "$tmp/cert.pem" "$tmp/key.pem" "${1:-2000}"
