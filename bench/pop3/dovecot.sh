#!/usr/bin/env bash
# The pop3d benchmark load against Dovecot's pop3 (Debian's dovecot-pop3d),
# side by side: the same users and the very same message files (hard links
# of a store filled by pop3_fill), a private Dovecot instance on free
# loopback ports, then bench/pop3/run.sh's load generator with the same
# modes. Run bench/pop3/run.sh first (it builds pop3_fill and pop3_load).
#
#   bench/pop3/dovecot.sh [BIN_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=build/bench-pop3
NBIG=${NBIG:-10000}; SIZE=${SIZE:-4096}; NPAR=${NPAR:-100}; NPER=${NPER:-100}
[ -x "$OUT/pop3_fill" ] && [ -x "$OUT/pop3_load" ] || {
  echo "run bench/pop3/run.sh first (builds $OUT/pop3_fill and pop3_load)" >&2; exit 1; }
command -v dovecot >/dev/null || { echo "dovecot is not installed (apt-get install dovecot-pop3d)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "needs root (Dovecot switches to the mail user)" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port); TLSPORT=$(free_port)
DIR=$(mktemp -d /tmp/postroom-bench-dovecot.XXXXXX)
trap 'dovecot -c "$DIR/dovecot.conf" stop 2>/dev/null || true; sleep 0.5; [ -n "${KEEP:-}" ] || rm -rf "$DIR"' EXIT
chmod 0755 "$DIR"   # the auth and mail processes run as dovecot/mail
mkdir -p "$DIR/run" "$DIR/state" "$DIR/log" "$DIR/mail"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$DIR/key.pem" -out "$DIR/cert.pem" \
  -days 2 -subj /CN=localhost >/dev/null 2>&1

echo "== filling (pop3_fill, then the files are linked into Dovecot maildirs)"
"$OUT/pop3_fill" "$DIR/store" bench "$NBIG" "$SIZE" "$NPAR" "$NPER"
link_user() { # local-part
  local md=$DIR/mail/$1/Maildir
  mkdir -p "$md/cur" "$md/new" "$md/tmp"
  # the user's INBOX is its first mailbox directory
  local inbox
  inbox=$(ls -d "$DIR/store/mail/bench.test/$1"/*/cur | sort -V | head -1)
  find "$inbox" -type f -exec ln {} "$md/cur/" \;
  echo "$1@bench.test:{PLAIN}bench" >> "$DIR/users"
}
link_user big
for i in $(seq "$NPAR"); do link_user "p$i"; done
chown -R mail:mail "$DIR/mail"

cat > "$DIR/dovecot.conf" <<EOF
base_dir = $DIR/run
state_dir = $DIR/state
instance_name = bench-pop3-$$
protocols = pop3
listen = 127.0.0.1
log_path = $DIR/log/dovecot.log
info_log_path = $DIR/log/info.log
disable_plaintext_auth = no
auth_mechanisms = plain login
ssl = yes
ssl_cert = <$DIR/cert.pem
ssl_key = <$DIR/key.pem
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $DIR/users
}
userdb {
  driver = static
  args = uid=mail gid=mail home=$DIR/mail/%n
}
mail_location = maildir:~/Maildir
first_valid_uid = 8
pop3_uidl_format = %08Xu%08Xv
service pop3-login {
  inet_listener pop3 {
    port = $PORT
  }
  inet_listener pop3s {
    port = $TLSPORT
    ssl = yes
  }
  process_min_avail = 4
}
service pop3 {
  process_limit = 1024
}
default_client_limit = 2000
default_process_limit = 1100
EOF
dovecot -c "$DIR/dovecot.conf"
for _ in $(seq 100); do
  (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break
  sleep 0.1
done

RESULTS=bench/results/pop3-dovecot.txt
: > "$RESULTS"
LOAD=$OUT/pop3_load
# Warm-up: Dovecot builds its index and caches on the first session.
"$LOAD" -p "$PORT" -u big@bench.test -w bench -n "$NBIG" -d 32 >/dev/null
"$LOAD" -p "$PORT" -u 'p%d@bench.test' -w bench -n "$NPER" -d 32 -P "$NPAR" >/dev/null
run() { local name=$1; shift; printf '%-34s %s\n' "dovecot: $name" "$("$LOAD" -h 127.0.0.1 "$@")" | tee -a "$RESULTS"; }
for mode in plain tls; do
  if [ $mode = tls ]; then P=(-p "$TLSPORT" -t); else P=(-p "$PORT"); fi
  run "$NBIG RETR one by one ($mode)" "${P[@]}" -u big@bench.test -w bench -n "$NBIG" -d 1
  run "$NBIG RETR pipelined 32 ($mode)" "${P[@]}" -u big@bench.test -w bench -n "$NBIG" -d 32
  run "$NPAR sessions x $NPER RETR ($mode)" "${P[@]}" -u 'p%d@bench.test' -w bench \
      -n "$NPER" -d 1 -P "$NPAR"
done
echo "results in $RESULTS"
