#!/usr/bin/env bash
# Replays each fuzz target's seed corpus, then fuzzes it for a bounded time.
# New inputs go to a scratch directory so the checked-in corpus stays as is.
set -u
dir=$1; secs=$2
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
pass=0; fail=0
for bin in "$dir"/fuzz/fuzz_*; do
  [ -x "$bin" ] || continue
  name=$(basename "$bin"); corpus=tests/fuzz/corpus/${name#fuzz_}
  scratch=$(mktemp -d)
  [ -d "$corpus" ] && cp -r "$corpus"/. "$scratch"/ 2>/dev/null
  echo "== fuzz: $name (${secs}s)"
  if "$bin" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
       -print_final_stats=0 "$scratch" >"$scratch.log" 2>&1; then
    pass=$((pass+1))
  else
    fail=$((fail+1)); echo "FAILED: $name"; tail -40 "$scratch.log"
  fi
  rm -rf "$scratch" "$scratch.log"
done
echo "fuzz: $pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
