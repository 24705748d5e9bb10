#!/usr/bin/env bash
# SMTP benchmark: messages/s and CPU-seconds per 1,000 messages for 1 KiB
# and 100 KiB messages at 1, 10 and 100 concurrent sessions, plus smtpd's
# peak RSS. Every accepted message is durable (fsync'd and indexed) before
# its 250.
#
#   bench/smtp_bench.sh [BINDIR]        fresh Postroom instance (build/bin)
#   TARGET=127.0.0.1:10025 RCPT=user@dom SERVER_PIDS="pids" bench/smtp_bench.sh
#                                       the same load against another server
#                                       (e.g. Postfix from /work/shared/peers)
# Knobs: N1K (messages per 1 KiB run), N100K, SESSIONS ("1 10 100"),
# SIZES ("1024 102400").
# CPU: for our smtpd, its own utime+stime; for any target also the whole
# machine's busy time minus the load generator's, so Postfix's many
# processes are counted too.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/bin}
OUT=build/bench-smtp
mkdir -p "$OUT"
cc -O2 -pthread -o "$OUT/smtp_load" bench/smtp/smtp_load.c

N1K=${N1K:-5000}
N100K=${N100K:-1000}
SESSIONS=${SESSIONS:-"1 10 100"}
SIZES=${SIZES:-"1024 102400"}
pid=""
dir=""

cleanup() {
	if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	[ -n "$dir" ] && rm -rf "$dir"
}
trap cleanup EXIT

if [ -z "${TARGET:-}" ]; then
	dir=$(mktemp -d /tmp/postroom-smtpbench-XXXXXX)
	port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	# The MX checks' lookups go to a closed loopback port (a quick
	# temperror each), never to the machine's resolver.
	dnsport=$(/usr/bin/python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	cat >"$dir/postroom.conf" <<-EOF
	hostname = mail.example.test
	data_dir = $dir/data
	smtp_listen = 127.0.0.1:$port
	submission_listen =
	smtps_listen =
	max_message_size = 50M
	max_connections_per_ip = 1000
	max_unauth_connections_per_ip = 1000
	dns_servers = 127.0.0.1:$dnsport
	EOF
	"$BIN/mailctl" -c "$dir/postroom.conf" domain add example.test
	echo "bench-password" | "$BIN/mailctl" -c "$dir/postroom.conf" user add bench@example.test --password-stdin >/dev/null
	"$BIN/smtpd" -c "$dir/postroom.conf" 2>"$dir/smtpd.log" &
	pid=$!
	for _ in $(seq 100); do
		(exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
		sleep 0.1
	done
	host=127.0.0.1
	RCPT=bench@example.test
	SERVER_PIDS=$pid
	name=postroom
else
	host=${TARGET%:*}
	port=${TARGET##*:}
	RCPT=${RCPT:?RCPT=address needed with TARGET}
	SERVER_PIDS=${SERVER_PIDS:-}
	name=$TARGET
fi

hz=$(getconf CLK_TCK)
busy() { awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat; }
proc_cpu() {
	local t=0 p
	for p in $SERVER_PIDS; do
		[ -r /proc/$p/stat ] && t=$((t + $(awk '{print $14+$15}' /proc/$p/stat)))
	done
	echo $t
}

printf '%-10s %6s %8s %8s %9s %12s %12s\n' target size sessions messages "msgs/s" "srv-cpu/1k" "sys-cpu/1k"
for size in $SIZES; do
	for c in $SESSIONS; do
		n=$N1K
		[ "$size" -gt 10000 ] && n=$N100K
		b0=$(busy); p0=$(proc_cpu)
		res=$("$OUT/smtp_load" -h "$host" -p "$port" -n "$n" -c "$c" -s "$size" -t "$RCPT") || true
		b1=$(busy); p1=$(proc_cpu)
		msgs=$(sed -n 's/.*messages=\([0-9]*\).*/\1/p' <<<"$res")
		rate=$(sed -n 's/.*rate=\([0-9.]*\).*/\1/p' <<<"$res")
		ccpu=$(sed -n 's/.*client_cpu=\([0-9.]*\).*/\1/p' <<<"$res")
		failed=$(sed -n 's/.*failed=\([0-9]*\).*/\1/p' <<<"$res")
		srv=$(awk -v d=$((p1 - p0)) -v hz=$hz -v m="$msgs" 'BEGIN{ if (m>0) printf "%.3f", d/hz/m*1000; else print "-" }')
		[ -z "$SERVER_PIDS" ] && srv="-"
		sys=$(awk -v d=$((b1 - b0)) -v hz=$hz -v cc="$ccpu" -v m="$msgs" 'BEGIN{ if (m>0) printf "%.3f", (d/hz-cc)/m*1000; else print "-" }')
		printf '%-10s %6s %8s %8s %9s %12s %12s%s\n' "$name" "$size" "$c" "$msgs" "$rate" "$srv" "$sys" \
			"$([ "${failed:-0}" != 0 ] && echo "  (failed=$failed)")"
	done
done
if [ -n "$pid" ]; then
	echo "smtpd peak RSS: $(awk '/VmHWM/{print $2, $3}' /proc/$pid/status)"
fi
