#!/usr/bin/python3
"""Writes N random MIME messages (nested multiparts, message/rfc822,
odd headers, broken boundaries, bare LF) into DIR, for a differential run
of compare_dovecot.py against Dovecot.  usage: gen_random.py DIR N [SEED]"""
import os, random, sys

ADDRS = ['a@b.c', '"Q \\"x\\" Y" <q@x.y>', 'Joe (c) <j@e.x>', 'grp: a@b, c@d;',
         'bare', '<@r:u@h>', '=?utf-8?q?=C3=A9?= <e@x>', 'x@[1.2.3.4]',
         'a@b, , c@d', 'Caf\xe9 <c@f>', '"un <a@b>', 'a b c', 'u@h (Name)',
         '"a@b" <c@d>', 'a.b.c@d.e', '"" <>', '<>', 'x <y>', 'A (B) C <d@e>',
         'Group: "q" <a@b> (c);', '@', ',a@b', 'a@b,', 'a@b c@d', 'j.doe <j@d>',
         '"quoted\\\\bs" <q@b>', 'a@b (nested (comment))', 'G: ;, h@i']
TYPES = ['text/plain', 'text/html; charset="utf-8"', 'TEXT/PLAIN; CHARSET=ISO-8859-1',
         'application/octet-stream; name*0="a"; name*1="b.bin"',
         'image/png; name*=utf-8\'\'%C3%A9.png', 'text', 'foo', '/x', '',
         'text/plain; format=flowed; delsp=yes', 'message/global',
         'application/pdf; name="x\\"y.pdf"']
CTES = [None, '7bit', 'BASE64', 'quoted-printable', '8bit', '(c) binary']


def rnd_header(r, top):
    h = []
    if top:
        for name in ['From', 'Sender', 'Reply-To', 'To', 'Cc', 'Bcc']:
            if r.random() < 0.4:
                h.append('%s: %s' % (name, r.choice(ADDRS)))
        if r.random() < 0.5:
            h.append('Subject: ' + r.choice(['hi', '=?utf-8?b?w6k=?=', 'a\n  fold', '', 'x\xe9']))
        if r.random() < 0.4:
            h.append('Date: Mon, 1 Jan 2024 00:00:00 +0000')
        if r.random() < 0.3:
            h.append('Message-ID: <%d@x>' % r.randint(1, 99))
        if r.random() < 0.5:
            h.append('MIME-Version: 1.0')
    if r.random() < 0.3:
        h.append('Content-Disposition: ' + r.choice(['inline', 'attachment; filename="a b"', '; x=y', 'ATTACHMENT; filename*0*=utf-8\'\'a; filename*1=b']))
    if r.random() < 0.2:
        h.append('Content-Language: ' + r.choice(['en', 'en, de', '']))
    if r.random() < 0.2:
        h.append('Content-ID: <c%d@x>' % r.randint(1, 9))
    if r.random() < 0.1:
        h.append('Content-Description: d')
    if r.random() < 0.1:
        h.append('Content-Location: http://x/')
    if r.random() < 0.1:
        h.append('Content-MD5: abc')
    c = r.choice(CTES)
    if c:
        h.append('Content-Transfer-Encoding: ' + c)
    return h


def entity(r, depth, bset):
    kind = r.random()
    if depth < 4 and kind < 0.35:
        b = r.choice(['b', 'bb', 'b1', 'bound', 'x' * r.randint(1, 3)]) + str(depth)
        sub = r.choice(['mixed', 'alternative', 'digest', 'related'])
        q = '"' if r.random() < 0.5 else ''
        h = rnd_header(r, depth == 0) + ['Content-Type: multipart/%s; boundary=%s%s%s' % (sub, q, b, q)]
        body = []
        if r.random() < 0.5:
            body.append('preamble')
        n = r.randint(0, 3)
        for i in range(n):
            body.append('--' + b + r.choice(['', '', ' ', '\t ']))
            if sub == 'digest' and r.random() < 0.5:
                body.append('\n'.join(['Subject: d%d' % i, '', 'digest body']))
            else:
                body.append(entity(r, depth + 1, bset + [b]))
        if r.random() < 0.8:
            body.append('--' + b + '--')
            if r.random() < 0.4:
                body.append('epilogue')
        return '\n'.join(h) + '\n\n' + '\n'.join(body)
    if depth < 4 and kind < 0.5:
        h = rnd_header(r, depth == 0) + ['Content-Type: message/rfc822']
        return '\n'.join(h) + '\n\n' + entity(r, depth + 1, bset)
    h = rnd_header(r, depth == 0)
    if r.random() < 0.8:
        h.append('Content-Type: ' + r.choice(TYPES))
    lines = [r.choice(['text', 'more text', '', '-- sig', 'x' * r.randint(0, 80), '=E9']) for _ in range(r.randint(0, 4))]
    if bset and r.random() < 0.1:
        lines.append('--' + r.choice(bset) + 'X')   # a prefix match
    if r.random() < 0.1:
        return '\n'.join(h) + '\n' + '\n'.join(lines)   # no blank line
    return '\n'.join(h) + '\n\n' + '\n'.join(lines)


def main():
    d, n = sys.argv[1], int(sys.argv[2])
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    os.makedirs(d, exist_ok=True)
    for i in range(n):
        r = random.Random(seed * 100000 + i)
        m = entity(r, 0, [])
        # CRLF only: with bare LF Dovecot's sizes count the CRs it adds
        m = m.replace('\n', '\r\n')
        if r.random() < 0.5:
            m += '\r\n'
        open(os.path.join(d, 'r%04d.eml' % i), 'wb').write(m.encode('latin-1'))


main()
