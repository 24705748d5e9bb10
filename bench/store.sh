#!/usr/bin/env bash
# Builds and runs the store delivery benchmark (bench/store/store_bench.c)
# against the optimised libraries. Usage: bench/store.sh [BASE_DIR] [SECONDS]
# or bench/store.sh list [BASE_DIR] [N] for the FLAGS listing of N messages.
# BASE_DIR should be on the disk the store will live on (default /tmp).
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
make --no-print-directory BUILD="$BUILD" "$BUILD/lib/libstore.a" "$BUILD/lib/libcommon.a" >/dev/null
mkdir -p "$BUILD/bench"
cc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -pthread -Icommon -Istore \
  -o "$BUILD/bench/store_bench" bench/store/store_bench.c \
  "$BUILD/lib/libstore.a" "$BUILD/lib/libcommon.a" \
  -llmdb -lsodium -lssl -lcrypto -lz -lev -lpthread
if [ "${1:-}" = list ]; then
  exec "$BUILD/bench/store_bench" list "${2:-/tmp}" "${3:-100000}"
fi
exec "$BUILD/bench/store_bench" "${1:-/tmp}" "${2:-3}"
