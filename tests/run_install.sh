#!/usr/bin/env bash
# Checks `make install` and `make uninstall` in a scratch DESTDIR: the
# programs land in $(PREFIX)/sbin, the sample config and postroom.conf in
# /etc/postroom, the systemd units (pointing at the installed programs) in
# $(PREFIX)/lib/systemd/system; a second install keeps an edited config;
# uninstall removes everything it installed but an edited config.
set -u
cd "$(dirname "$0")/.."
MAKE=${MAKE:-make}
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
fail=0
no() { echo "install-test: $*"; fail=1; }
mk() { $MAKE --no-print-directory -s "$@" DESTDIR="$dest" PREFIX=/usr/local >"$dest.log" 2>&1 ||
       { cat "$dest.log"; no "make $* failed"; }; rm -f "$dest.log"; }

progs=$($MAKE --no-print-directory -s print-programs)
[ -n "$progs" ] || no "no programs"
units=$(cd etc/systemd && ls *.service)

mk install
for p in $progs; do
  [ -x "$dest/usr/local/sbin/$p" ] || no "sbin/$p not installed"
done
[ -f "$dest/etc/postroom/postroom.conf.sample" ] || no "postroom.conf.sample not installed"
cmp -s etc/postroom.conf.sample "$dest/etc/postroom/postroom.conf" || no "postroom.conf not installed"
for u in $units; do
  f=$dest/usr/local/lib/systemd/system/$u
  [ -f "$f" ] || { no "$u not installed"; continue; }
  grep -q '^ExecStart=/usr/local/sbin/' "$f" || no "$u: ExecStart does not name /usr/local/sbin"
done

# an edited config survives install and uninstall
echo "# edited" >>"$dest/etc/postroom/postroom.conf"
mk install
grep -q '^# edited$' "$dest/etc/postroom/postroom.conf" || no "install overwrote postroom.conf"
mk uninstall
grep -q '^# edited$' "$dest/etc/postroom/postroom.conf" 2>/dev/null || no "uninstall removed an edited postroom.conf"
rm -f "$dest/etc/postroom/postroom.conf"

# an unedited one goes, and nothing else is left
mk install
mk uninstall
left=$(cd "$dest" && find . -type f | sort)
[ -z "$left" ] || no "left after uninstall: $left"

[ $fail -eq 0 ] && echo "install-test: ok"
exit $fail
