#!/usr/bin/env bash
# Builds the optimised daemons and runs the imapd core benchmark
# (bench/imap_core_bench.py: SELECT, UID FETCH 1:* (FLAGS), header fetch,
# body SEARCH, mixed load, RSS on 1,000 / 10,000 / 100,000 messages).
# Usage: bench/imap_core.sh [extra args for imap_core_bench.py]
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/bench-imap}
make --no-print-directory BUILD="$BUILD" all >/dev/null
exec /usr/bin/python3 bench/imap_core_bench.py --bin "$BUILD/bin" "$@"
