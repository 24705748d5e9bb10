#!/usr/bin/env bash
# Enforces the module boundaries of STYLE.md: common includes no store or
# daemon header, store no daemon header or libev/TLS/sockets, and no daemon
# includes another daemon's header.
set -u
cd "$(dirname "$0")/.."
bad=0
hdrs() { ls "$1"/*.h 2>/dev/null | xargs -r -n1 basename; }
check() { # dir forbidden-header-list...
  local dir=$1; shift
  for h in "$@"; do
    if grep -Hn "#include *[\"<]$h[\">]" "$dir"/*.[ch] 2>/dev/null; then
      echo "check_deps: $dir must not include $h"; bad=1
    fi
  done
}
store_h=$(hdrs store); smtpd_h=$(hdrs smtpd); pop3d_h=$(hdrs pop3d); imapd_h=$(hdrs imapd)
mailctl_h=$(hdrs mailctl)
check common $store_h $smtpd_h $pop3d_h $imapd_h $mailctl_h
check store $smtpd_h $pop3d_h $imapd_h $mailctl_h ev.h openssl/ssl.h sys/socket.h
check smtpd $pop3d_h $imapd_h $mailctl_h
check pop3d $smtpd_h $imapd_h $mailctl_h
check imapd $smtpd_h $pop3d_h $mailctl_h
check mailctl $smtpd_h $pop3d_h $imapd_h ev.h
[ $bad -eq 0 ] && echo "check_deps: ok"
exit $bad
