#!/usr/bin/env bash
# Inbound checks benchmark (issue 13): inbound msgs/s landed and server
# CPU-seconds per 1,000 messages with the checks off, with SPF + DKIM +
# DMARC (`inbound_checks = no` / `yes`: the same smtpd binary, restarted
# with the key flipped), and with rspamd as a milter; beside it Postfix ->
# Dovecot without and with OpenDKIM (the peers kit in /tmp/anchor, as
# root); alternating in one run, 3 runs, medians, ratios, load averages;
# then the CPU cost of one DKIM verification at 1 KiB and 100 KiB. About
# 4-5 minutes on 2 cores. One table on stdout and in
# bench/results/inbound.txt. All of it is bench/inbound/inbench.py.
#
#   bench/inbound_checks.sh [BINDIR] [inbench.py options]
#     BINDIR default build/bin (its ../lib/libcommon.a builds the DKIM bench)
#     options: --quick (one small run), --runs N, --no-peers, --no-rspamd
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=build/bin
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
	BIN=$1
	shift
fi
exec /usr/bin/python3 bench/inbound/inbench.py --bin "$BIN" "$@"
