#!/usr/bin/env bash
# Runs the client-replay suite and the imaplib/real-client tests against a
# throw-away Dovecot (Debian's dovecot-imapd) instead of imapd, to check that the
# recorded sessions describe real server behaviour. Not part of `make test`.
# Dovecot differs from our rules in known places (it trusts loopback for plaintext
# auth, answers empty lines with BAD, NO to a tagged line inside SASL, STATUS
# echoes the INBOX spelling, no RENAME INBOX, no trailing "/", closes the connection
# on plaintext pipelined after STARTTLS, sends "+" for a huge APPEND literal, no
# literal for the SASL-IR initial response, no HIGHESTMODSEQ on a plain SELECT); those
# tests fail.
# usage: tests/proto/imap/clients/sessions/dovecot-check.sh [pytest args]     (as root)
set -eu
top=$(cd "$(dirname "$0")/../../../../.." && pwd)
d=$(mktemp -d /tmp/postroom-dovecot-XXXXXX)
trap 'doveadm -c "$d/dovecot.conf" stop 2>/dev/null || true; rm -rf "$d"' EXIT
chmod 755 "$d"
mkdir -p "$d"/{run,state,log,mail,tls}
chown mail:mail "$d/mail"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=mail.example.test" \
  -addext "subjectAltName=DNS:mail.example.test,DNS:localhost,IP:127.0.0.1" \
  -keyout "$d/tls/key.pem" -out "$d/tls/cert.pem" 2>/dev/null
for i in $(seq 1 200); do echo "u$i@example.test:{PLAIN}s3cret-Pass::::::"; done > "$d/users"
p1=${DOVECOT_IMAP_PORT:-21143}; p2=${DOVECOT_IMAPS_PORT:-21993}
mb() { printf '  mailbox %s {\n    special_use = \\%s\n    auto = subscribe\n  }\n' "$1" "$1"; }
cat > "$d/dovecot.conf" <<CONF
base_dir = $d/run
state_dir = $d/state
instance_name = postroom-check-$$
protocols = imap
listen = 127.0.0.1
log_path = $d/log/dovecot.log
ssl = required
ssl_cert = <$d/tls/cert.pem
ssl_key = <$d/tls/key.pem
auth_mechanisms = plain login
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $d/users
}
userdb {
  driver = static
  args = uid=mail gid=mail home=$d/mail/%d/%n
}
mail_location = maildir:~/Maildir
first_valid_uid = 8
imap_capability = +SPECIAL-USE
namespace inbox {
  inbox = yes
  separator = /
$(mb Drafts; mb Sent; mb Trash; mb Junk; mb Archive)
}
protocol imap {
  mail_max_userip_connections = 200
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $p1
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $p2
    ssl = yes
  }
}
CONF
dovecot -c "$d/dovecot.conf"
sleep 1
cd "$top"
[ $# -gt 0 ] || set -- tests/proto/imap/clients
IMAP_REPLAY_TARGET="127.0.0.1,$p1,$p2,$d/tls/cert.pem" /usr/bin/python3 -m pytest -q \
  -p no:cacheprovider "$@"
