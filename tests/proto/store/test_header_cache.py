"""Header fetches served from the store's header cache must be byte for byte
what the message file says: BODY[HEADER], RFC822.HEADER, partial HEADER,
HEADER.FIELDS and HEADER.FIELDS.NOT, for ordinary headers, an empty header,
a message without an empty line, and headers over the cache's 16 KiB cap
(read from the file) interleaved with cached ones in one FETCH 1:*."""
import imaplib
import re

PW = "hdr-cache-Pw1"
USER = "hc@example.test"


def message(i):
    if i % 7 == 3:
        # over the cap: served from the file
        filler = "".join("X-Filler-%d: %s\r\n" % (k, "y" * 60)
                         for k in range(300))
        return ("Subject: big %d\r\nFrom: a@b.test\r\n%s\r\nbody %d\r\n"
                % (i, filler, i)).encode()
    if i == 5:
        return b"\r\nno header at all\r\n"
    if i == 6:
        return b"Subject: no body\r\nFrom: x@y.test\r\n"
    return ("From: Sender <s%d@example.org>\r\nSubject: hello %d\r\n"
            "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
            "X-Folded: a\r\n b\r\n\r\nbody %d\r\n\r\nmore\r\n"
            % (i, i, i)).encode()


def header_of(raw):
    if raw.startswith(b"\r\n"):
        return b"\r\n"
    i = raw.find(b"\r\n\r\n")
    return raw if i < 0 else raw[:i + 4]


def fields(hdr, names, negate=False):
    out = b""
    for m in re.finditer(rb"(?m)^([^ \t\r\n:]+):.*\r\n(?:[ \t].*\r\n)*", hdr):
        if (m.group(1).lower() in names) != negate:
            out += m.group(0)
    return out + b"\r\n"


def fetch_all(m, item):
    typ, data = m.fetch("1:*", item)
    assert typ == "OK", data
    return [d[1] for d in data if isinstance(d, tuple)]


def test_header_fetches_match_file(pr):
    pr.write_config(allow_plaintext_auth="yes")
    pr.add_user(USER, password=PW)
    pr.start("imapd")
    m = imaplib.IMAP4("127.0.0.1", pr.port("imap"))
    m.login(USER, PW)
    raws = [message(i) for i in range(40)]
    for raw in raws:
        typ, _ = m.append("INBOX", None, None, raw)
        assert typ == "OK"
    m.select("INBOX", readonly=True)
    hdrs = [header_of(r) for r in raws]
    assert fetch_all(m, "(BODY.PEEK[])") == raws
    assert fetch_all(m, "(BODY.PEEK[HEADER])") == hdrs
    assert fetch_all(m, "(RFC822.HEADER)") == hdrs
    assert fetch_all(m, "(BODY.PEEK[HEADER]<5.20>)") == [h[5:25] for h in hdrs]
    assert fetch_all(m, "(BODY.PEEK[HEADER.FIELDS (FROM SUBJECT X-FOLDED)])") \
        == [fields(h, (b"from", b"subject", b"x-folded")) for h in hdrs]
    assert fetch_all(m, "(BODY.PEEK[HEADER.FIELDS.NOT (SUBJECT)])") \
        == [fields(h, (b"subject",), negate=True) for h in hdrs]
    # mixed with an item that needs the file: still the same bytes
    got = fetch_all(m, "(BODY.PEEK[HEADER] BODY.PEEK[TEXT])")
    assert got[0] == hdrs[0]
    # after a copy, the copy's header comes from the cache too
    typ, _ = m.copy("1:10", "Archive")
    assert typ == "OK"
    m.select("Archive", readonly=True)
    assert fetch_all(m, "(BODY.PEEK[HEADER])") == hdrs[:10]
    m.logout()
