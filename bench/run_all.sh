#!/usr/bin/env bash
# Runs every benchmark of the bundle with modest sizes (the whole run takes
# a few minutes, under 10 on a small machine) and writes one summary to
# bench/results/summary.txt (git-ignored). Each benchmark's full output is
# kept beside it in bench/results/<name>.log. Called by `make bench`.
#
#   bench/run_all.sh [BINDIR]        default build/bin; its ../lib holds the
#                                    libraries the store/pop3 tools link with
#
# Knobs: BENCH_TIMEOUT (seconds per benchmark, default 240). A benchmark that
# fails or times out is reported as such and the others still run.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/bin}
BUILD=$(dirname "$BIN")
T=${BENCH_TIMEOUT:-240}
R=bench/results
mkdir -p "$R"
SUMMARY=$R/summary.txt

for p in smtpd pop3d mailctl; do
	if [ ! -x "$BIN/$p" ]; then
		echo "run_all: $BIN/$p missing (run make first)" >&2
		exit 1
	fi
done

{
	echo "Postroom benchmarks  $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "binaries: $BIN  ($(git rev-parse --short HEAD 2>/dev/null || echo '?'))"
	echo "machine: $(nproc) CPU, $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
} > "$SUMMARY"

# run NAME SUMMARY-FILTER COMMAND...: runs one benchmark under a time limit;
# the filter (an awk program) picks the lines that go into the summary.
run() {
	local name=$1 filter=$2 start rc
	shift 2
	start=$SECONDS
	echo "== $name: $*" >&2
	timeout --kill-after=10 "$T" "$@" > "$R/$name.log" 2>&1
	rc=$?
	{
		echo
		echo "== $name ($((SECONDS - start)) s$([ $rc -ne 0 ] && echo ", FAILED rc=$rc$([ $rc -eq 124 ] && echo ': timeout')"))"
		awk "$filter" "$R/$name.log"
	} >> "$SUMMARY"
	return 0
}

# SMTP: 1 KiB and 100 KiB messages, 1, 10 and 100 sessions, durable 250s.
run smtp '/^target|^postroom|peak RSS|failed/' \
	env N1K=3000 N100K=500 SESSIONS="1 10 100" bench/smtp_bench.sh "$BIN"

# POP3: a 5,000-message maildrop one by one and pipelined, 50 parallel
# sessions of 100 messages, plain and TLS.
run pop3 '!/^== filling|^   filled|^results in/' \
	env NBIG=5000 NPAR=50 NPER=100 bench/pop3/run.sh "$BIN"

# Memory per idle connection (plain, TLS), 1,000 connections.
run conn_mem '{ print }' bench/conn_mem.sh 1000

# Store delivery rate for 3 s, against the same optimised build.
if [ -x bench/store.sh ]; then
	run store '{ print }' env BUILD="$BUILD" bench/store.sh /tmp 3
fi

echo >> "$SUMMARY"
echo "full outputs: $R/*.log" >> "$SUMMARY"
cat "$SUMMARY"
