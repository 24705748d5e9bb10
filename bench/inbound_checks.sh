#!/usr/bin/env bash
# Inbound checks benchmark: inbound msgs/s and smtpd CPU-seconds per 1,000
# messages on the MX listener with the checks on (SPF, DKIM verification,
# DMARC against a local dnslib DNS server; the messages are DKIM-signed by
# dkimpy) and off (the same load against smtpd built from BASE, the commit
# before the checks, exported with git archive into a scratch directory),
# and the cost of one DKIM verification for 1 KiB and 100 KiB messages;
# then with checks on and a private rspamd as the milter (RSPAMD=0 skips).
#
#   bench/inbound_checks.sh [BINDIR]     (default build/bin)
# Knobs: N (messages per run, 2000), SESSIONS ("1 10"), BASE (068814a).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/bin}
N=${N:-2000}
SESSIONS=${SESSIONS:-"1 10"}
BASE=${BASE:-068814a}
OUT=build/bench-inbound
mkdir -p "$OUT"

# DKIM verification cost.
cc -O2 -std=c11 -D_GNU_SOURCE -Icommon -o "$OUT/dkim_verify_bench" \
	bench/inbound/dkim_verify_bench.c build/lib/libcommon.a -lssl -lcrypto -lsodium -lz
"$OUT/dkim_verify_bench" 1024 2000
"$OUT/dkim_verify_bench" 102400 500

# Checks off: smtpd from BASE.
base=$OUT/base
if [ ! -x "$base/build/bin/smtpd" ]; then
	rm -rf "$base"; mkdir -p "$base"
	git archive "$BASE" | tar -x -C "$base"
	make -C "$base" -j2 >/dev/null
fi
for s in $SESSIONS; do
	echo "checks=off $(/usr/bin/python3 bench/inbound/load.py "$base/build/bin" "$N" 1024 "$s")"
	echo "checks=on  $(/usr/bin/python3 bench/inbound/load.py "$BIN" "$N" 1024 "$s")"
	if [ "${RSPAMD:-1}" = 1 ] && command -v rspamd >/dev/null; then
		echo "checks=on+rspamd $(RSPAMD=1 /usr/bin/python3 bench/inbound/load.py "$BIN" "$N" 1024 "$s")"
	fi
done
