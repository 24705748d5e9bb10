"""RFC conformance points found by outside testing (issue 10): the whole
32-bit UID range in sets, '[' in unquoted mailbox names, ESEARCH MODSEQ
with MIN/MAX, SEARCH FROM on parsed addresses, and header sections of
messages whose header is larger than the server's read bound."""
import re

from lib import new_user
from lib.imap import TextRaw, Raw, append_ok, module_instance, raw_fill, raw_login
from lib.mail import message

imapsrv = module_instance("imapsrv")


def fetch_nums(unt):
    return [int(x.split()[1]) for x in unt if re.match(r"\* \d+ FETCH ", x)]


def test_uid_sets_take_every_32bit_number(imapsrv):
    r = raw_login(imapsrv, new_user(imapsrv))
    raw_fill(r, 3)
    r.ok("CREATE Other")
    r.ok("SELECT INBOX")
    unt, t = r.ok("UID FETCH 4294967295 (FLAGS)")
    assert fetch_nums(unt) == [], unt
    unt, t = r.ok("UID SEARCH UID 1:4294967295")
    assert unt[-1] == "* SEARCH 1 2 3", unt
    unt, t = r.ok("UID SEARCH UID 4294967295")
    assert unt[-1] == "* SEARCH", unt
    # '*' in a UID set is the highest UID, even next to 4294967295
    unt, t = r.ok("UID FETCH 4294967295:* (UID)")
    assert fetch_nums(unt) == [3], unt
    # a range may be written high:low
    unt, t = r.ok("UID FETCH 4294967295:2 (UID)")
    assert fetch_nums(unt) == [2, 3], unt
    unt, t = r.ok("FETCH *:2 (UID)")
    assert fetch_nums(unt) == [2, 3], unt
    unt, t = r.ok("UID SEARCH UID *:2")
    assert unt[-1] == "* SEARCH 2 3", unt
    r.ok("UID STORE 4294967295 +FLAGS (\\Flagged)")
    r.ok("UID STORE 3:4294967295 +FLAGS (\\Deleted)")
    r.ok("UID COPY 4294967295 Other")
    r.ok("UID MOVE 4294967295 Other")
    unt, t = r.ok("UID EXPUNGE 4294967295")
    assert not any("EXPUNGE" in x for x in unt), unt
    unt, t = r.ok("UID EXPUNGE 1:4294967295")
    assert "* 3 EXPUNGE" in unt, unt
    for bad in ("UID FETCH 4294967296 (FLAGS)", "UID FETCH 0 (FLAGS)",
                "UID SEARCH UID 1:4294967296"):
        unt, t = r.cmd(bad)
        assert " BAD " in t, (bad, t)
    r.close()


def test_bracket_in_unquoted_mailbox_names(imapsrv):
    r = raw_login(imapsrv, new_user(imapsrv))
    r.ok("CREATE foo[bar")
    r.ok("CREATE [q")
    unt, t = r.ok('LIST "" foo[bar')
    assert unt == ['* LIST (\\HasNoChildren) "/" "foo[bar"'] or \
        unt == ['* LIST (\\HasNoChildren) "/" foo[bar'], unt
    unt, t = r.ok("SELECT [q")
    assert "[READ-WRITE]" in t
    r.ok("RENAME foo[bar foo[baz] ")
    unt, t = r.ok('LIST "" *')
    names = {x.rsplit(" ", 1)[1].strip('"') for x in unt}
    assert {"foo[baz]", "[q", "INBOX"} <= names, unt
    # BODY[...] sections keep their bracket with spaces inside
    raw_fill(r, 1, box="[q")
    r.ok("SELECT [q")
    unt, t = r.ok("FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert any("BODY[HEADER.FIELDS (SUBJECT)] {" in x for x in unt), unt
    r.close()


def test_esearch_modseq_of_min_and_max(imapsrv):
    r = raw_login(imapsrv, new_user(imapsrv))
    raw_fill(r, 3)
    r.ok("ENABLE CONDSTORE")
    r.ok("SELECT INBOX")
    # the last change wins: 1 lowest, then 3, then 2 highest
    for n in (1, 3, 2):
        r.ok("STORE %d +FLAGS.SILENT (\\Flagged)" % n)
    unt, t = r.ok("FETCH 1:3 (MODSEQ)")
    ms = {int(m.group(1)): int(m.group(2)) for m in
          (re.match(r"\* (\d+) FETCH \(MODSEQ \((\d+)\)\)", x) for x in unt) if m}
    assert ms[1] < ms[3] < ms[2], ms

    def esearch(ret):
        unt, t = r.ok("SEARCH RETURN (%s) MODSEQ 1" % ret)
        es = [x for x in unt if x.startswith("* ESEARCH")]
        assert len(es) == 1, unt
        return es[0].split(") ", 1)[1]
    assert esearch("MIN") == "MIN 1 MODSEQ %d" % ms[1]
    assert esearch("MAX") == "MAX 3 MODSEQ %d" % ms[3]
    assert esearch("MIN MAX") == "MIN 1 MAX 3 MODSEQ %d" % ms[3]
    assert esearch("MIN COUNT") == "MIN 1 COUNT 3 MODSEQ %d" % ms[2]
    assert esearch("ALL") == "ALL 1:3 MODSEQ %d" % ms[2]
    assert esearch("SAVE MAX") == "MAX 3 MODSEQ %d" % ms[3]
    unt, t = r.ok("SEARCH MODSEQ 1")
    assert unt[-1] == "* SEARCH 1 2 3 (MODSEQ %d)" % ms[2], unt
    r.close()


def test_search_from_matches_parsed_addresses(imapsrv):
    r = raw_login(imapsrv, new_user(imapsrv))
    froms = ["<user-from (comment)@ (comment) domain.org>",
             "Plain Person <plain@example.org>",
             "=?UTF-8?Q?J=C3=B6rg_M=C3=BCller?= <joerg@example.org>",
             "undisclosed-recipients:;"]
    for i, f in enumerate(froms):
        unt, t = r.append("INBOX", message("m%d" % i, frm=f))
        assert " OK " in t, t
    r.ok("SELECT INBOX")
    cases = [("user-from@domain.org", "1"), ("user-from@", "1"),
             ("@domain.org", "1"), ("(comment)", "1"),     # raw text kept
             ("plain person", "2"), ("plain@example", "2"),
             ("J\u00f6rg", "3"), ("joerg@", "3"), ("example.org", "2 3"),
             ("undisclosed", "4")]
    for needle, want in cases:
        data = needle.encode()
        tag = r.tag()
        r.send("%s SEARCH CHARSET UTF-8 FROM {%d+}\r\n" % (tag, len(data)))
        r.send(data + b"\r\n")
        unt, t = r.until(tag)
        assert " OK " in t, (needle, t)
        assert unt[-1] == ("* SEARCH " + want), (needle, unt)
    # TO/CC/BCC get the same treatment; HEADER keeps the raw field
    unt, t = r.append("INBOX", message("cc", extra="Cc: <cc-user (x)@ (y) cc.example>\r\n"))
    r.ok("NOOP")    # EXISTS/RECENT of the APPEND come before the SEARCHes
    unt, t = r.ok("SEARCH CC cc-user@cc.example")
    assert [x for x in unt if x.startswith("* SEARCH")] == ["* SEARCH 5"], unt
    unt, t = r.ok('SEARCH HEADER From "user-from@domain.org"')
    assert [x for x in unt if x.startswith("* SEARCH")] == ["* SEARCH"], unt
    r.close()


def big_header_message(size):
    """A message whose header holds one big X-Pad field of folded lines
    (so that its header is larger than size), a Subject after it, then
    a short body."""
    line = "  " + "x" * 70 + "\r\n"
    pad = "X-Pad: start\r\n" + line * (size // len(line) + 1)
    head = ("From: a@example.test\r\nTo: b@example.test\r\n" + pad +
            "Subject: after the pad\r\n\r\n")
    return (head + "the body\r\n").encode(), len(head)


def test_header_larger_than_read_bound(imapsrv):
    r = Raw(imapsrv)
    user = new_user(imapsrv)
    r.login(user)
    data, hlen = big_header_message(1100000)
    append_ok(r, data)
    # a message/rfc822 part that carries the same big header
    outer = (b"From: c@example.test\r\nSubject: outer\r\nMIME-Version: 1.0\r\n"
             b"Content-Type: multipart/mixed; boundary=BB\r\n\r\n"
             b"--BB\r\nContent-Type: message/rfc822\r\n\r\n" + data +
             b"\r\n--BB--\r\n")
    append_ok(r, outer)
    r.ok("SELECT INBOX")
    for item, label in (("BODY.PEEK[HEADER]", b"BODY[HEADER]"),
                        ("RFC822.HEADER", b"RFC822.HEADER")):
        unt, t = r.ok("FETCH 1 (%s)" % item)
        body = literal_of(unt, label)
        assert body == data[:hlen], (len(body), hlen)
    unt, t = r.ok("FETCH 1 (BODY.PEEK[TEXT] RFC822.SIZE)")
    assert literal_of(unt, b"BODY[TEXT]") == b"the body\r\n"
    assert b"RFC822.SIZE %d" % len(data) in b"".join(unt)
    unt, t = r.ok("FETCH 2 (BODY.PEEK[1.HEADER])")
    assert literal_of(unt, b"BODY[1.HEADER]") == data[:hlen]
    # a bounded HEADER.FIELDS never returns part of a field
    for item, label in (("BODY.PEEK[HEADER.FIELDS (X-PAD FROM)]",
                         b"BODY[HEADER.FIELDS (X-PAD FROM)]"),
                        ("BODY.PEEK[1.HEADER.FIELDS (X-PAD FROM)]",
                         b"BODY[1.HEADER.FIELDS (X-PAD FROM)]")):
        unt, t = r.ok("FETCH %s (%s)" % ("1" if item.count("1.") == 0 else "2", item))
        body = literal_of(unt, label)
        assert body.endswith(b"\r\n\r\n"), body[-80:]
        assert body.startswith(b"From: a@example.test\r\n"), body[:80]
        rest = body[len(b"From: a@example.test\r\n"):]
        assert rest in (b"\r\n", data[data.index(b"X-Pad"):data.index(b"Subject")] + b"\r\n")
    r.close()


def literal_of(unt, label):
    """The literal that follows `label {n}` in a FETCH response (the Raw
    client returns a literal's bytes right after its announcing line)."""
    joined = b"".join(unt)
    m = re.search(re.escape(label) + rb" \{(\d+)\}\r\n", joined)
    assert m, joined[:200]
    n = int(m.group(1))
    return joined[m.end():m.end() + n]
