#!/usr/bin/env bash
# pop3d benchmark: RETR of a 10,000-message maildrop of 4 KiB messages over
# one session (one by one, and pipelined 32 deep), and 100 parallel sessions
# each downloading 100 messages; plain and TLS. Reports seconds, messages/s,
# MB/s and the peak RSS (VmHWM) of pop3d during the RETR phase
# (server_peak_rss_retr; reset after the logins, whose Argon2id hashing
# needs 64 MiB per concurrent check on the worker threads).
#
#   bench/pop3/run.sh [BIN_DIR]          # default build/bin (make first)
#   POP3_BENCH_TARGET=host:port:tlsport bench/pop3/run.sh   # another server
#
# With POP3_BENCH_TARGET the same load runs against an already running
# server (Dovecot, say) holding the same users (big@bench.test with 10,000
# messages, p1..p100@bench.test with 100 each, password "bench"); pop3d is
# then not started and no RSS is reported.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-build/bin}
LIB=$(cd "$BIN/.." && pwd)/lib
OUT=build/bench-pop3
NBIG=${NBIG:-10000}; SIZE=${SIZE:-4096}; NPAR=${NPAR:-100}; NPER=${NPER:-100}
mkdir -p "$OUT" bench/results
cc -std=c11 -D_GNU_SOURCE -O2 -pthread -Icommon -Istore -o "$OUT/pop3_fill" \
  bench/pop3/pop3_fill.c "$LIB/libstore.a" "$LIB/libcommon.a" \
  -lev -llmdb -lsodium -lssl -lcrypto -lz -lpthread
cc -std=c11 -D_GNU_SOURCE -O2 -o "$OUT/pop3_load" bench/pop3/pop3_load.c -lssl -lcrypto
LOAD=$OUT/pop3_load
RESULTS=bench/results/pop3.txt
: > "$RESULTS"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

PID=
if [ -n "${POP3_BENCH_TARGET:-}" ]; then
  IFS=: read -r HOST PORT TLSPORT <<<"$POP3_BENCH_TARGET"
else
  HOST=127.0.0.1; PORT=$(free_port); TLSPORT=$(free_port)
  DIR=$(mktemp -d /tmp/postroom-bench-pop3.XXXXXX)
  trap '[ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$DIR"' EXIT
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$DIR/key.pem" -out "$DIR/cert.pem" \
    -days 2 -subj /CN=localhost >/dev/null 2>&1
  cat > "$DIR/postroom.conf" <<EOF
hostname = bench.test
data_dir = $DIR/data
tls_cert = $DIR/cert.pem
tls_key = $DIR/key.pem
pop3_listen = $HOST:$PORT
pop3s_listen = $HOST:$TLSPORT
allow_plaintext_auth = yes
max_connections_per_ip = 1000
max_unauth_connections_per_ip = 1000
EOF
  echo "== filling: $NBIG x $SIZE bytes + $NPAR users x $NPER"
  SECONDS=0
  "$OUT/pop3_fill" "$DIR/data" bench "$NBIG" "$SIZE" "$NPAR" "$NPER"
  echo "   filled in ${SECONDS}s"
  "$BIN/pop3d" -c "$DIR/postroom.conf" 2>"$DIR/pop3d.log" &
  PID=$!
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/$HOST/$PORT) 2>/dev/null && break
    sleep 0.1
  done
fi


run() { # name, then pop3_load args
  local name=$1; shift
  local line
  line=$("$LOAD" -h "$HOST" ${PID:+-R "$PID"} "$@")
  printf '%-34s %s\n' "$name" "$line" | tee -a "$RESULTS"
}

for mode in plain tls; do
  if [ $mode = tls ]; then P=(-p "$TLSPORT" -t); else P=(-p "$PORT"); fi
  run "$NBIG RETR one by one ($mode)" "${P[@]}" -u big@bench.test -w bench -n "$NBIG" -d 1
  run "$NBIG RETR pipelined 32 ($mode)" "${P[@]}" -u big@bench.test -w bench -n "$NBIG" -d 32
  run "$NPAR sessions x $NPER RETR ($mode)" "${P[@]}" -u 'p%d@bench.test' -w bench \
      -n "$NPER" -d 1 -P "$NPAR"
done

if [ -n "$PID" ]; then
  rc=0; kill -TERM "$PID"; wait "$PID" || rc=$?; PID=
  echo "pop3d exit status on SIGTERM: $rc"
fi
echo "results in $RESULTS"
