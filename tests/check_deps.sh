#!/usr/bin/env bash
# Enforces the module boundaries on the #include lines (the Makefile gives
# each directory only the include paths it may use; this catches what the
# paths alone cannot):
#  1. common includes no store or daemon header; store no daemon header and
#     nothing of libev, TLS or sockets; no daemon includes another daemon's
#     header; mailctl does not use libev.
#  2. A header named *_private.h is the inside of its directory's module: it
#     is never included from outside that directory (daemons, mailctl,
#     bench/ and tests/ included).
#  3. Tests (tests/unit, tests/fuzz, tests/mime) go through public headers:
#     those of common/ and store/ that are not *_private.h, of a daemon only
#     the headers of its pure-parser library (the *_PARSERS sources in the
#     Makefile: imapd/imap_parser.c -> imap_parser.h), system headers, and
#     their own headers in tests/. A white-box test of a module's insides is
#     the exception: it is listed in WHITEBOX, with the reason.
set -u
cd "$(dirname "$0")/.."

# file:header pairs allowed by rules 2 and 3.
WHITEBOX="
tests/fuzz/fuzz_imap_compress.c:conn_private.h
tests/unit/test_store_queue.c:store_private.h
tests/unit/test_smtp_junk.c:smtp_session.h
"
# fuzz_imap_compress: drives common/compress.c's inflater and deflater on a
# bare struct conn (no socket, no loop), which no public entry point allows.
# test_store_queue: writes truncated and garbled queue records straight into
# the store's LMDB tables to check that they are moved aside, not trusted.
# test_smtp_junk: runs smtpd's commit path (smtp_submit.c, smtp_junk.c, smtp_checks.c, linked
# by the Makefile's test_smtp_junk_SRCS) on a real store, without a socket.

# The daemons: every program of the Makefile's PROGRAMS list but mailctl.
DAEMONS=$(sed -n 's/^PROGRAMS *:= *//p' Makefile | tr ' ' '\n' | grep -vx mailctl | xargs)
[ -n "$DAEMONS" ] || { echo "check_deps: no PROGRAMS in the Makefile"; exit 1; }
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
whitebox() { case "$WHITEBOX" in *"$1:$2"*) return 0 ;; esac; return 1; }
# Quoted includes of a file, one header name per line.
quoted() { sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$1"; }

# 1. layers
store_h=$(hdrs store); mailctl_h=$(hdrs mailctl)
declare -A dh
alld=""
for d in $DAEMONS; do dh[$d]=$(hdrs $d); alld="$alld ${dh[$d]}"; done
check common $store_h $alld $mailctl_h
check store $alld $mailctl_h ev.h openssl/ssl.h sys/socket.h
for d in $DAEMONS; do
  [ -d "$d" ] || continue
  others=""
  for o in $DAEMONS; do [ "$o" = "$d" ] || others="$others ${dh[$o]}"; done
  check "$d" $others $mailctl_h
done
check mailctl $alld ev.h

# 2. *_private.h stays in its directory
sources=$(find common store mailctl bench tests $DAEMONS -name '*.[ch]' 2>/dev/null | sort)
for p in */*_private.h; do
  [ -e "$p" ] || continue
  home=$(dirname "$p"); h=$(basename "$p")
  for f in $sources; do
    [ "$(dirname "$f")" = "$home" ] && continue
    quoted "$f" | grep -qx "$h" || continue
    whitebox "$f" "$h" && continue
    echo "check_deps: $f includes $h, which is private to $home/"; bad=1
  done
done

# 3. tests use public headers
public=""
for h in $(hdrs common) $(hdrs store); do
  case "$h" in *_private.h) ;; *) public="$public $h" ;; esac
done
parsers=$(sed -n '/_PARSERS *:=/,/[^\\]$/p' Makefile | grep -o '[a-z0-9_]*/[a-z0-9_]*\.c')
[ -n "$parsers" ] || { echo "check_deps: no *_PARSERS in the Makefile"; bad=1; }
for c in $parsers; do
  h=${c%.c}.h
  [ -e "$h" ] && public="$public $(basename "$h")"
done
for f in $(find tests/unit tests/fuzz tests/mime -name '*.[ch]' 2>/dev/null | sort); do
  for h in $(quoted "$f"); do
    case " $public " in *" $h "*) continue ;; esac
    [ -e "$(dirname "$f")/$h" ] && continue       # the test's own header
    whitebox "$f" "$h" && continue
    echo "check_deps: $f includes $h, which is not a public header of common/, store/ or a parser library"
    bad=1
  done
done

[ $bad -eq 0 ] && echo "check_deps: ok"
exit $bad
