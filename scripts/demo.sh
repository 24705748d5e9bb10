#!/usr/bin/env bash
# Runs a demo Postroom instance in the foreground (what `make run` does).
# Usage: scripts/demo.sh BINDIR
#
# Creates var/demo/ on first use: a config with unprivileged ports on
# 127.0.0.1, a self-signed certificate, the domain example.test and the user
# demo@example.test whose generated password is printed once, when created.
# Then starts whichever of smtpd, pop3d, imapd and mtad exist in BINDIR, prints how
# to point Thunderbird at them, and stops them all cleanly on Ctrl-C.
set -euo pipefail

usage() { echo "usage: $0 BINDIR" >&2; exit 2; }
[ $# -eq 1 ] || usage
[ -d "$1" ] || { echo "demo: no such directory: $1 (run make first)" >&2; exit 1; }
BINDIR=$(cd "$1" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEMO=$ROOT/var/demo
CONF=$DEMO/postroom.conf
DOMAIN=example.test
USER_ADDR=demo@$DOMAIN
HOST=127.0.0.1

# The ports, all unprivileged so no root is needed.
SMTP_PORT=2525 SUBMISSION_PORT=5587 SMTPS_PORT=5465
POP3_PORT=1110 POP3S_PORT=1995 IMAP_PORT=1143 IMAPS_PORT=1993

MAILCTL=$BINDIR/mailctl
[ -x "$MAILCTL" ] || { echo "demo: $MAILCTL not found (run make first)" >&2; exit 1; }
command -v openssl >/dev/null || {
  echo "demo: openssl is missing. Run: sudo apt-get install -y openssl" >&2; exit 1; }

mkdir -p "$DEMO/data"
chmod 700 "$DEMO"

if [ ! -f "$DEMO/cert.pem" ] || [ ! -f "$DEMO/key.pem" ]; then
  echo "demo: creating a self-signed certificate in $DEMO"
  openssl req -x509 -newkey rsa:2048 -nodes -days 825 \
    -keyout "$DEMO/key.pem" -out "$DEMO/cert.pem" \
    -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" >/dev/null 2>&1
  chmod 600 "$DEMO/key.pem"
fi

if [ ! -f "$CONF" ]; then
  cat >"$CONF" <<EOF
# Postroom demo instance, written by scripts/demo.sh. Edit freely; the
# script does not overwrite it (delete var/demo/ to start over).
hostname          = localhost
data_dir          = $DEMO/data
tls_cert          = $DEMO/cert.pem
tls_key           = $DEMO/key.pem

smtp_listen       = $HOST:$SMTP_PORT
submission_listen = $HOST:$SUBMISSION_PORT
smtps_listen      = $HOST:$SMTPS_PORT
pop3_listen       = $HOST:$POP3_PORT
pop3s_listen      = $HOST:$POP3S_PORT
imap_listen       = $HOST:$IMAP_PORT
imaps_listen      = $HOST:$IMAPS_PORT

max_message_size  = 50M
allow_plaintext_auth = no
log_level         = info
${POSTROOM_DEMO_DNS:+dns_servers       = $POSTROOM_DEMO_DNS}

# Outbound mail (mtad). By default it delivers straight to each domain's MX
# on port 25. If your provider blocks port 25, send through its smarthost:
#   relayhost           = smtp.provider.example:587
#   relayhost_auth_file = $DEMO/relay-auth   # "username password", mode 0600
EOF
fi

mailctl() { "$MAILCTL" -c "$CONF" "$@"; }

if ! mailctl domain list | grep -qx "$DOMAIN"; then
  mailctl domain add "$DOMAIN"
fi
if ! mailctl user list "$DOMAIN" | grep -qx "$USER_ADDR"; then
  # 16 letters and digits from the kernel's random pool, without the
  # look-alikes I, O, l, 0 and 1 (about 93 bits). cut, not head, at the end:
  # it reads all its input, so pipefail never sees a SIGPIPE.
  PASSWORD=$(head -c 64 /dev/urandom | base64 | tr -dc 'A-HJ-NP-Za-km-z2-9' | cut -c1-16)
  printf '%s\n' "$PASSWORD" | mailctl user add "$USER_ADDR" --password-stdin
  printf 'From: Postroom <postmaster@%s>\r\nTo: <%s>\r\nSubject: Welcome to Postroom\r\nDate: %s\r\nMessage-ID: <welcome.%s@%s>\r\n\r\nThis message was stored by "mailctl deliver" when the demo was set up.\r\nSend mail to %s to see it arrive.\r\n' \
    "$DOMAIN" "$USER_ADDR" "$(LC_ALL=C date -R)" "$(date +%s)" "$DOMAIN" "$USER_ADDR" |
    mailctl deliver "$USER_ADDR" || true
  echo
  echo "==============================================================="
  echo " Created $USER_ADDR with the password:  $PASSWORD"
  echo " It is shown only this once. To change it later:"
  echo "   $MAILCTL -c $CONF user passwd $USER_ADDR"
  echo "==============================================================="
  echo
  unset PASSWORD
else
  echo "demo: $USER_ADDR exists (its password was printed when it was created;"
  echo "      set a new one with: $MAILCTL -c $CONF user passwd $USER_ADDR)"
fi

names=() pids=()
# Exit statuses of daemons already reaped by "wait -n", by pid.
declare -A status=()
stopping=0
stop() {
  local rc=0 i pid st
  [ "$stopping" -eq 1 ] && return
  stopping=1
  trap - INT TERM HUP
  echo
  echo "demo: stopping ${names[*]}"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for i in "${!pids[@]}"; do
    pid=${pids[$i]}
    if [ -n "${status[$pid]:-}" ]; then
      st=${status[$pid]}
    else
      st=0; wait "$pid" || st=$?
    fi
    if [ "$st" -ne 0 ]; then
      rc=1; echo "demo: ${names[$i]} exited with status $st" >&2
    fi
  done
  echo "demo: stopped"
  exit $rc
}
trap stop INT TERM HUP

# Each daemon runs in its own session: a Ctrl-C on the terminal reaches only
# this script, which then sends exactly one SIGTERM to each daemon. (Were the
# terminal's SIGINT to reach them too, the second signal could arrive after a
# daemon had already restored the default action, killing it mid-cleanup.)
# A background child of a script is not a group leader, so setsid execs the
# daemon directly and $! is the daemon's pid.
for d in smtpd pop3d imapd mtad; do
  if [ -x "$BINDIR/$d" ]; then
    setsid "$BINDIR/$d" -c "$CONF" &
    names+=("$d") pids+=($!)
  fi
done
if [ ${#pids[@]} -eq 0 ]; then
  echo "demo: no daemon (smtpd, pop3d, imapd, mtad) in $BINDIR yet" >&2
  exit 1
fi

# Running and not a zombie (kill -0 succeeds on an unreaped zombie).
alive() {
  local st
  read -r _ _ st _ 2>/dev/null <"/proc/$1/stat" || return 1
  [ "$st" != Z ]
}

# Give the daemons a moment to bind, so a port clash shows up here.
sleep 1
for i in "${!pids[@]}"; do
  if ! alive "${pids[$i]}"; then
    echo "demo: ${names[$i]} failed to start (is a port in use? see above)" >&2
    stop
  fi
done

have() { case " ${names[*]} " in *" $1 "*) return 0 ;; esac; return 1; }
cat <<EOF

Postroom demo is running (${names[*]}). Data, config and certificate: $DEMO

Thunderbird: Account Settings > Account Actions > Add Mail Account, then
"Configure manually":
  Email address:  $USER_ADDR      Password: the one printed when it was created
  Username:       $USER_ADDR      Authentication: Normal password
EOF
have imapd && cat <<EOF
  Incoming IMAP:  server $HOST  port $IMAP_PORT  STARTTLS  (or port $IMAPS_PORT, SSL/TLS)
EOF
have pop3d && cat <<EOF
  Incoming POP3:  server $HOST  port $POP3_PORT  STARTTLS  (or port $POP3S_PORT, SSL/TLS)
EOF
have smtpd && cat <<EOF
  Outgoing SMTP:  server $HOST  port $SUBMISSION_PORT  STARTTLS  (or port $SMTPS_PORT, SSL/TLS)
  Inbound MX (unauthenticated, local recipients only): $HOST port $SMTP_PORT
  Spam filter: with rspamd running locally (Debian: apt-get install rspamd;
  its proxy worker listens in milter mode on 127.0.0.1:11332), add
    milter = inet:127.0.0.1:11332
  to $CONF and restart: spam then lands in the Junk folder.
EOF
have mtad && cat <<EOF
Mail to other domains is queued and delivered by mtad, straight to their MX
hosts on port 25. If your provider blocks port 25, set a smarthost in
$CONF (relayhost, relayhost_auth_file: see the comment there) and restart.
The queue: $MAILCTL -c $CONF queue list
EOF
cat <<EOF
The certificate is self-signed: when Thunderbird warns, choose "Confirm
Security Exception" (it is $DEMO/cert.pem).
Manage users: $MAILCTL -c $CONF --help

Press Ctrl-C to stop.
EOF

# Sleep until a signal arrives (the trap stops everything) or a daemon
# exits on its own (then stop the others too).
while :; do
  done_pid= st=0
  wait -n -p done_pid "${pids[@]}" || st=$?
  if [ -n "$done_pid" ]; then
    status[$done_pid]=$st
    stop
  fi
done
