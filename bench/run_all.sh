#!/usr/bin/env bash
# `make bench`. First the side-by-side table (bench/sbs.py): the same loads
# aimed at Postroom and at Postfix 3.7 -> Dovecot LMTP / Dovecot 2.3 from the
# peers kit in /tmp/anchor, alternating A B A B, medians of 3, ratios, the
# load average before every run (about 15 minutes on 2 cores). Then the
# Postroom-only benchmarks that have no peer measurement (connection memory,
# the store's group commit), labelled as such. Everything goes into
# bench/results/summary.txt (git-ignored), each benchmark's full output
# beside it in bench/results/<name>.log.
#
#   bench/run_all.sh [BINDIR]        default build/bin; its ../lib holds the
#                                    libraries the store/pop3 tools link with
#
# Knobs: BENCH_QUICK=1 (a ~3-minute smoke run: small counts, one run each),
# BENCH_POSTROOM_ONLY=1 (skip the peers; also what happens without the kit
# or without root), BENCH_TIMEOUT (seconds per Postroom-only benchmark,
# default 240). A benchmark that fails or times out is reported as such and
# the others still run.
# BENCH_INBOUND=1 adds the inbound checks benchmark (bench/inbound_checks.sh,
# about 5 more minutes, its own table).
#
# The peers kit: as root, run setup-peers.sh from the project's shared
# peers directory (it installs Debian's postfix, dovecot-imapd/-pop3d/-lmtpd
# and builds /tmp/anchor). sbs.py starts the kit's Postfix and Dovecot if
# they are not running and stops what it started.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/bin}
BUILD=$(dirname "$BIN")
T=${BENCH_TIMEOUT:-240}
R=bench/results
mkdir -p "$R"
SUMMARY=$R/summary.txt

for p in smtpd pop3d imapd mtad mailctl; do
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

QUICK=${BENCH_QUICK:-0}
SIDE=1
if [ "${BENCH_POSTROOM_ONLY:-0}" = 1 ]; then
	SIDE=0
elif [ ! -x /tmp/anchor/bin/dovecot_restart.sh ]; then
	SIDE=0
	echo "run_all: no peers kit in /tmp/anchor: Postroom-only figures. For the" \
		"side-by-side table run setup-peers.sh (shared peers directory) as root first." >&2
elif [ "$(id -u)" != 0 ]; then
	SIDE=0
	echo "run_all: the side-by-side run needs root (drop_caches, the kit's daemons)" >&2
fi

if [ $SIDE = 1 ]; then
	echo "== side by side (sbs.py$([ "$QUICK" = 1 ] && echo ' --quick'))" >&2
	start=$SECONDS
	/usr/bin/python3 bench/sbs.py --bin "$BIN" $([ "$QUICK" = 1 ] && echo --quick) \
		> "$R/sbs.log" 2>&1
	rc=$?
	{
		echo
		echo "== side by side with the peers ($((SECONDS - start)) s$([ $rc -ne 0 ] && echo ", FAILED rc=$rc"))"
		if [ $rc -eq 0 ]; then cat "$R/sbs.txt"; else tail -20 "$R/sbs.log"; fi
		echo
		echo "== Postroom only (no peer figure below)"
	} >> "$SUMMARY"
else
	echo >> "$SUMMARY"
	echo "== Postroom only (no peers kit: no side-by-side figures)" >> "$SUMMARY"
	if [ "$QUICK" = 1 ]; then
		run smtp '/^target|^postroom|peak RSS|failed/' \
			env N1K=500 N100K=100 SESSIONS="1 10" bench/smtp_bench.sh "$BIN"
	else
		# SMTP: 1 KiB and 100 KiB messages, 1, 10 and 100 sessions.
		run smtp '/^target|^postroom|peak RSS|failed/' \
			env N1K=3000 N100K=500 SESSIONS="1 10 100" bench/smtp_bench.sh "$BIN"
		# POP3: a 5,000-message maildrop one by one and pipelined, 50
		# parallel sessions of 100 messages, plain and TLS.
		run pop3 '!/^== filling|^   filled|^results in/' \
			env NBIG=5000 NPAR=50 NPER=100 bench/pop3/run.sh "$BIN"
	fi
fi

# Optional: the inbound checks (issue 13), off / on / on + rspamd, beside
# Postfix without / with OpenDKIM (about 5 minutes; its own table).
if [ "${BENCH_INBOUND:-0}" = 1 ]; then
	T=900 run inbound '!/^[0-9][0-9]:[0-9][0-9]:[0-9][0-9] /' \
		bench/inbound_checks.sh "$BIN" $([ "$QUICK" = 1 ] && echo --quick)
fi

# Memory per idle connection (plain, TLS).
run conn_mem '{ print }' bench/conn_mem.sh $([ "$QUICK" = 1 ] && echo 200 || echo 1000)

# Store delivery rate, against the same optimised build.
if [ -x bench/store.sh ]; then
	run store '{ print }' env BUILD="$BUILD" bench/store.sh /tmp $([ "$QUICK" = 1 ] && echo 1 || echo 3)
fi

echo >> "$SUMMARY"
echo "full outputs: $R/*.log" >> "$SUMMARY"
cat "$SUMMARY"
