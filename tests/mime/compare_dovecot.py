#!/usr/bin/python3
"""Compares mime_parse() with Dovecot 2.3 on every tests/data/mime/*.eml.

Development aid, not part of `make test`: needs `apt-get install
dovecot-imapd` and root. Starts a private Dovecot (no listeners) under a
temp dir, saves each message with doveadm and fetches imap.envelope,
imap.bodystructure and imap.body, then compares token by token with
build/mime/mime_dump (quoted vs literal strings compare equal).

usage: tests/mime/compare_dovecot.py [--write-expected] [file.eml ...]
--write-expected writes NAME.expected (our output) for files that match
Dovecot or are listed in KNOWN_DIFF (differences we chose, see below).
"""
import glob, os, re, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DUMP = os.path.join(ROOT, 'build/mime/mime_dump')

# Messages where we differ on purpose:
# bare_lf: Dovecot counts sizes as if every LF were CRLF; we count the
#   octets as stored, which is what imapd serves and what the part table's
#   offsets are.
# deep_nesting: our depth limit (MIME_MAX_DEPTH) is not Dovecot's.
KNOWN_DIFF = {'bare_lf', 'deep_nesting'}

CONF = """protocols =
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/log
mail_location = maildir:{d}/mail/%u
listen = 127.0.0.1
passdb {{
  driver = static
  args = password=x
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={d}/home/%u
}}
ssl = no
"""


def tokens(s):
    """IMAP data to a token list: parens, NIL, numbers, strings."""
    out, i = [], 0
    while i < len(s):
        c = s[i:i + 1]
        if c in (b' ', b'\r', b'\n'):
            i += 1
        elif c in (b'(', b')'):
            out.append(c)
            i += 1
        elif c == b'"':
            j, v = i + 1, bytearray()
            while j < len(s) and s[j:j + 1] != b'"':
                if s[j:j + 1] == b'\\':
                    j += 1
                v += s[j:j + 1]
                j += 1
            out.append(b'S' + bytes(v))
            i = j + 1
        elif c == b'{':
            m = re.match(rb'\{(\d+)\}\r?\n', s[i:])
            n = int(m.group(1))
            i += m.end()
            out.append(b'S' + s[i:i + n])
            i += n
        else:
            m = re.match(rb'[^ ()\r\n]+', s[i:])
            out.append(m.group(0))
            i += m.end()
    return out


def fields(raw):
    """Splits 'imap.x: value' output (values may hold literals)."""
    res, cur = {}, None
    for m in re.finditer(rb'(?m)^(imap\.[a-z]+): ', raw):
        if cur:
            res[cur[0]] = raw[cur[1]:m.start()].rstrip(b'\r\n')
        cur = (m.group(1).decode(), m.end())
    if cur:
        res[cur[0]] = raw[cur[1]:].rstrip(b'\r\n')
    return res


def main():
    write = '--write-expected' in sys.argv
    files = [a for a in sys.argv[1:] if not a.startswith('--')] or \
        sorted(glob.glob(os.path.join(ROOT, 'tests/data/mime/*.eml')))
    d = tempfile.mkdtemp(prefix='mimecmp')
    os.chmod(d, 0o755)
    for sub in ('run', 'state', 'mail', 'home'):
        os.makedirs(os.path.join(d, sub))
    subprocess.run(['chown', 'nobody:nogroup', d + '/mail', d + '/home'], check=True)
    conf = os.path.join(d, 'dovecot.conf')
    open(conf, 'w').write(CONF.format(d=d))
    subprocess.run(['dovecot', '-c', conf], check=True)
    time.sleep(0.5)
    bad = 0
    try:
        for f in files:
            name = os.path.basename(f)[:-4]
            da = ['doveadm', '-c', conf]
            subprocess.run(da + ['expunge', '-u', 't', 'mailbox', 'INBOX', 'all'],
                           capture_output=True)
            subprocess.run(da + ['save', '-u', 't'], stdin=open(f, 'rb'), check=True)
            dv = subprocess.run(da + ['fetch', '-u', 't',
                                      'imap.envelope imap.bodystructure imap.body',
                                      'mailbox', 'INBOX', 'all'],
                                capture_output=True, check=True).stdout
            ours_raw = subprocess.run([DUMP, f], capture_output=True, check=True).stdout
            dvf, ours = fields(dv), fields(ours_raw)
            same = all(tokens(dvf.get(k, b'')) == tokens(ours.get(k, b''))
                       for k in ('imap.envelope', 'imap.bodystructure', 'imap.body'))
            status = 'same' if same else ('known-diff' if name in KNOWN_DIFF else 'DIFF')
            print('%-28s %s' % (name, status))
            if not same:
                for k in ('imap.envelope', 'imap.bodystructure', 'imap.body'):
                    if tokens(dvf.get(k, b'')) != tokens(ours.get(k, b'')):
                        print('  dovecot %s: %r' % (k, dvf.get(k, b'')[:600]))
                        print('  ours    %s: %r' % (k, ours.get(k, b'')[:600]))
                if name not in KNOWN_DIFF:
                    bad += 1
            if write and (same or name in KNOWN_DIFF):
                open(f[:-4] + '.expected', 'wb').write(ours_raw)
    finally:
        subprocess.run(['doveadm', '-c', conf, 'stop'], capture_output=True)
        subprocess.run(['rm', '-rf', d])
    print('%d differing' % bad)
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
