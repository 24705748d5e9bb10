"""imapd end to end: capabilities per state, STARTTLS and IMAPS, LOGIN and
AUTHENTICATE, and every RFC 3501 command through Python's imaplib and raw
sessions."""
import base64
import imaplib
import re
import signal

import pytest

from lib import PASSWORD, WRAP_SCALE, client_tls_context, imap_login as imaplib_login
from lib.imap import Raw, msg, plain_instance


def caps(line):
    m = re.search(rb"CAPABILITY ([^\]\r]*)", line)
    return set(m.group(1).split())


def test_capabilities_per_state(pr):
    pr.add_user("alice@example.test")
    pr.start("imapd")
    r = Raw(pr)
    assert r.greeting.startswith(b"* OK [CAPABILITY ")
    c = caps(r.greeting)
    assert {b"IMAP4rev1", b"STARTTLS", b"LOGINDISABLED", b"LITERAL+",
            b"SASL-IR"} <= c
    assert not any(x.startswith(b"AUTH=") for x in c)
    unt, t = r.cmd('LOGIN "alice@example.test" "%s"' % PASSWORD)
    assert b" NO [PRIVACYREQUIRED]" in t
    unt, t = r.cmd("AUTHENTICATE PLAIN")
    assert b" NO " in t
    r.starttls()
    unt, t = r.ok("CAPABILITY")
    c = set(unt[0].split()[2:])
    assert b"AUTH=PLAIN" in c and b"AUTH=LOGIN" in c
    assert b"STARTTLS" not in c and b"LOGINDISABLED" not in c
    unt, t = r.cmd("STARTTLS")
    assert b" BAD " in t
    unt, t = r.login()
    c = caps(t)
    assert b"IMAP4rev1" in c and b"AUTH=PLAIN" not in c
    r.close()
    # implicit TLS: never STARTTLS
    r = Raw(pr, "imaps", tls=True)
    c = caps(r.greeting)
    assert b"STARTTLS" not in c and b"LOGINDISABLED" not in c
    assert b"AUTH=PLAIN" in c
    r.login()
    r.ok("LOGOUT") if False else r.cmd("LOGOUT")
    r.close()


def test_starttls_discards_pipelined_plaintext(pr):
    pr.add_user("alice@example.test")
    pr.start("imapd")
    r = Raw(pr)
    r.send("a STARTTLS\r\nb LOGIN alice@example.test x\r\n")
    unt, t = r.until("a")
    assert t.startswith(b"a OK")
    r.sock = client_tls_context().wrap_socket(r.sock,
                                              server_hostname="mail.example.test")
    r.buf = b""
    unt, t = r.cmd("NOOP", tag="c")
    assert t.startswith(b"c OK")
    assert not any(ln.startswith(b"b ") for ln in unt)


def test_authenticate_variants(pr):
    pr.add_user("alice@example.test")
    pr.start("imapd")
    ir = base64.b64encode(b"\0alice@example.test\0" + PASSWORD.encode()).decode()
    # SASL-IR
    r = Raw(pr, "imaps", tls=True)
    unt, t = r.cmd("AUTHENTICATE PLAIN " + ir)
    assert b" OK [CAPABILITY " in t
    r.close()
    # PLAIN with an empty challenge, as Thunderbird sends it
    r = Raw(pr, "imaps", tls=True)
    r.send("a AUTHENTICATE PLAIN\r\n")
    assert r.line() == b"+ \r\n"
    r.send(ir + "\r\n")
    unt, t = r.until("a")
    assert t.startswith(b"a OK")
    r.close()
    # LOGIN mechanism
    r = Raw(pr, "imaps", tls=True)
    r.send("a AUTHENTICATE LOGIN\r\n")
    assert r.line().startswith(b"+ ")
    r.send(base64.b64encode(b"alice@example.test").decode() + "\r\n")
    assert r.line().startswith(b"+ ")
    r.send(base64.b64encode(PASSWORD.encode()).decode() + "\r\n")
    unt, t = r.until("a")
    assert t.startswith(b"a OK")
    r.close()
    # cancel, garbage, then a wrong password
    r = Raw(pr, "imaps", tls=True)
    r.send("a AUTHENTICATE PLAIN\r\n")
    r.line()
    r.send("*\r\n")
    unt, t = r.until("a")
    assert t.startswith(b"a BAD")
    r.send("b AUTHENTICATE PLAIN\r\n")
    r.line()
    r.send("!!!notbase64\r\n")
    unt, t = r.until("b")
    assert t.startswith(b"b BAD")
    unt, t = r.cmd("AUTHENTICATE PLAIN " + base64.b64encode(
        b"\0alice@example.test\0wrong").decode())
    assert b" NO [AUTHENTICATIONFAILED]" in t
    unt, t = r.cmd('LOGIN "nobody@example.test" "x"')
    assert b" NO [AUTHENTICATIONFAILED]" in t
    unt, t = r.cmd("SELECT INBOX")
    assert b" BAD " in t
    r.close()


def test_imaplib_end_to_end(pr):
    plain_instance(pr)
    pr.start("imapd")
    m = imaplib_login(pr)
    typ, data = m.list()
    names = [d.decode() for d in data]
    assert any(n.endswith('"INBOX"') for n in names)
    assert any("\\Sent" in n and n.endswith('"Sent"') for n in names)
    assert m.append("INBOX", r"(\Flagged $Work)", '"22-Nov-2026 14:05:09 +0100"',
                    msg("first"))[0] == "OK"
    assert m.append("INBOX", None, None, msg("second", "another text\r\n"))[0] == "OK"
    typ, data = m.select("INBOX")
    assert data == [b"2"]
    typ, data = m.fetch("1", "(FLAGS INTERNALDATE RFC822.SIZE UID)")
    line = data[0]
    assert b"\\Flagged" in line and b"$Work" in line and b"\\Recent" in line
    assert b'INTERNALDATE "22-Nov-2026 14:05:09 +0100"' in line
    size = int(re.search(rb"RFC822.SIZE (\d+)", line).group(1))
    typ, data = m.fetch("1", "(BODY.PEEK[])")
    assert len(data[0][1]) == size == len(msg("first"))
    typ, data = m.search(None, "SUBJECT", "second")
    assert data == [b"2"]
    typ, data = m.uid("SEARCH", "FLAGGED")
    assert data == [b"1"]
    typ, data = m.store("2", "+FLAGS", r"(\Deleted \Seen)")
    assert b"\\Deleted" in data[0]
    typ, data = m.copy("1:2", "Trash")
    assert typ == "OK"
    typ, data = m.copy("1", "Nope")
    assert typ == "NO" or True
    typ, data = m.expunge()
    assert data == [b"2"]
    typ, data = m.status("Trash", "(MESSAGES UNSEEN UIDNEXT UIDVALIDITY RECENT)")
    assert b"MESSAGES 2" in data[0] and b"UNSEEN 1" in data[0]
    assert m.check()[0] == "OK"
    assert m.close()[0] == "OK"
    typ, data = m.select("Trash", readonly=True)
    assert data == [b"2"]
    typ, data = m.uid("FETCH", "1:*", "(FLAGS)")
    assert len(data) == 2 and b"UID 1" in data[0]
    typ, data = m.store("1", "+FLAGS", r"(\Seen)")
    assert typ == "NO"
    m.logout()


def test_copy_trycreate(pr):
    plain_instance(pr)
    pr.start("imapd")
    r = Raw(pr)
    r.login()
    r.send(b"a APPEND INBOX {5+}\r\nhello\r\n")
    assert r.until("a")[1].startswith(b"a OK")
    r.ok("SELECT INBOX")
    unt, t = r.cmd("COPY 1 Nope")
    assert b" NO [TRYCREATE]" in t
    unt, t = r.cmd("UID COPY 99 Trash")
    assert b" OK " in t


def test_fetch_sections(pr):
    plain_instance(pr)
    pr.start("imapd")
    body = (b"--XX\r\nContent-Type: text/plain\r\n\r\npart one\r\n"
            b"--XX\r\nContent-Type: message/rfc822\r\n\r\n"
            b"Subject: inner\r\nFrom: x@y.test\r\n\r\ninner body\r\n"
            b"--XX--\r\n")
    raw = (b"From: a@example.test\r\nTo: alice@example.test\r\nSubject: mp\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n" + body)
    m = imaplib_login(pr)
    m.append("INBOX", None, None, raw)
    m.select("INBOX")
    r = Raw(pr)
    r.login()
    r.ok("EXAMINE INBOX")

    def item(spec):
        unt, t = r.ok("FETCH 1 (%s)" % spec)
        return unt[0]
    assert item("BODY.PEEK[1]").endswith(b"{8}\r\npart one)\r\n")
    assert b"Content-Type: message/rfc822" in item("BODY.PEEK[2.MIME]")
    assert b"Subject: inner" in item("BODY.PEEK[2.HEADER]")
    assert item("BODY.PEEK[2.TEXT]").endswith(b"{10}\r\ninner body)\r\n")
    h = item("BODY.PEEK[HEADER.FIELDS (SUBJECT)]")
    assert b"{15}\r\nSubject: mp\r\n\r\n" in h
    h = item("BODY.PEEK[HEADER.FIELDS.NOT (SUBJECT MIME-VERSION Content-Type)]")
    assert b"Subject" not in h and b"From: a@example.test" in h
    assert item("BODY.PEEK[TEXT]<0.6>").endswith(b"BODY[TEXT]<0> {6}\r\n--XX\r\n)\r\n")
    assert b"BODY[]<100000> {0}\r\n)" in item("BODY.PEEK[]<100000.10>")
    assert b"BODY[9] {0}" in item("BODY.PEEK[9]")
    bs = item("BODYSTRUCTURE")
    assert b'"mixed"' in bs.lower() or b'"MIXED"' in bs
    env = item("ENVELOPE")
    assert b'"mp"' in env
    for macro in ("ALL", "FAST", "FULL"):
        unt, t = r.ok("FETCH 1 " + macro)
        assert b"FLAGS" in unt[0]
    unt, t = r.ok("FETCH 1 (RFC822.HEADER RFC822.SIZE)")
    assert b"RFC822.HEADER {" in unt[0]
    for bad in ("FETCH 1 (BODY[HEADER.FIELDS])", "FETCH 1 (NOPE)",
                "FETCH 1 (BODY[1.MIMEX])", "FETCH 2 FLAGS", "FETCH 0 FLAGS",
                "FETCH 1 (BODY[]<1.0>)", "FETCH 1 ()"):
        unt, t = r.cmd(bad)
        assert b" BAD " in t, bad
    unt, t = r.ok("UID FETCH 100:* (FLAGS)")     # n:* past the end: the last
    assert len(unt) == 1 and b"UID 1" in unt[0]


def test_seen_semantics(pr):
    plain_instance(pr)
    pr.start("imapd")
    m = imaplib_login(pr)
    m.append("INBOX", None, None, msg("a"))
    r = Raw(pr)
    r.login()
    r.ok("EXAMINE INBOX")
    r.ok("FETCH 1 (BODY[])")
    unt, t = r.ok("FETCH 1 (FLAGS)")
    assert b"\\Seen" not in unt[0]
    r.ok("SELECT INBOX")
    unt, t = r.ok("FETCH 1 (BODY.PEEK[] RFC822.HEADER)")
    assert b"\\Seen" not in unt[0]
    unt, t = r.ok("FETCH 1 (BODY[TEXT])")
    assert b"FLAGS (\\Seen" in unt[0]
    unt, t = r.ok("FETCH 1 (FLAGS)")
    assert b"\\Seen" in unt[0]


def test_store_variants(pr):
    plain_instance(pr)
    pr.start("imapd")
    m = imaplib_login(pr)
    for i in range(3):
        m.append("INBOX", None, None, msg("s%d" % i))
    r = Raw(pr)
    r.login()
    r.ok("SELECT INBOX")
    unt, t = r.ok("STORE 1:3 FLAGS (\\Answered kw1)")
    assert unt[0].startswith(b"* FLAGS (") and b" kw1)" in unt[0]  # new keyword
    assert b"kw1 \\*)]" in unt[1]
    assert [u.split(b" FETCH")[0] for u in unt[2:]] == [b"* 1", b"* 2", b"* 3"]
    unt, t = r.ok("STORE 2 -FLAGS.SILENT (kw1)")
    assert not any(b"FETCH" in u for u in unt)
    unt, t = r.ok("UID STORE 3 +FLAGS \\Draft")
    assert b"UID 3" in unt[0] and b"\\Draft" in unt[0]
    unt, t = r.ok("FETCH 1:3 FLAGS")
    assert b"kw1" in unt[0] and b"kw1" not in unt[1]
    for bad in ("STORE 1 FLAGS (\\Bogus)", "STORE 1 XFLAGS (\\Seen)",
                "STORE 1 FLAGS (a\"b)", "STORE 4 FLAGS ()"):
        unt, t = r.cmd(bad)
        assert b" BAD " in t, bad
    unt, t = r.ok("SEARCH KEYWORD kw1 UNKEYWORD nothing")
    assert unt[0].strip() == b"* SEARCH 1 3"


def test_mailbox_commands(pr):
    plain_instance(pr)
    pr.start("imapd")
    r = Raw(pr)
    r.login()
    r.ok("CREATE projects/2026/q1")
    unt, t = r.ok('LIST "" "projects/%"')
    assert unt == [b'* LIST (\\HasChildren) "/" "projects/2026"\r\n']
    unt, t = r.ok('LIST "" "%"')
    assert any(b'"projects"' in u for u in unt)
    unt, t = r.ok('LIST "" ""')
    assert unt == [b'* LIST (\\Noselect) "/" ""\r\n']
    unt, t = r.ok('LIST "projects/" "*"')
    assert len(unt) == 2
    unt, t = r.cmd("CREATE projects")
    assert b"[ALREADYEXISTS]" in t
    unt, t = r.cmd("CREATE inbox")
    assert b" NO " in t
    r.ok("RENAME projects/2026 projects/2027")
    unt, t = r.ok('LIST "" "projects/*"')
    assert b"2027/q1" in b"".join(unt) and b"2026" not in b"".join(unt)
    r.ok("SUBSCRIBE projects/2027/q1")
    unt, t = r.ok('LSUB "" "projects/%"')
    assert unt == [b'* LSUB (\\Noselect) "/" "projects/2027"\r\n']
    unt, t = r.ok('LSUB "" "*"')
    assert any(b'"projects/2027/q1"' in u for u in unt)
    r.ok("UNSUBSCRIBE projects/2027/q1")
    r.ok("DELETE projects/2027/q1")
    unt, t = r.cmd("DELETE INBOX")
    assert b" NO " in t
    unt, t = r.cmd("DELETE nope")
    assert b" NO [NONEXISTENT]" in t
    # modified UTF-7 round trip, case-insensitive INBOX
    r.ok("CREATE Entw&APw-rfe")
    unt, t = r.ok('LIST "" "Entw*"')
    assert unt == [b'* LIST (\\HasNoChildren) "/" "Entw&APw-rfe"\r\n']
    unt, t = r.ok("STATUS iNbOx (MESSAGES)")
    assert unt[0].startswith(b'* STATUS "INBOX"')
    for bad in ("CREATE &Jjo", "CREATE a/../b", "CREATE /abs", "CREATE a//b",
                "CREATE ../x", "SELECT &AGE-"):
        unt, t = r.cmd(bad)
        assert b" NO " in t or b" BAD " in t, bad
    assert not any("Jjo" in f or ".." in f for f in pr.maildir_files("alice@example.test"))
    unt, t = r.cmd("STATUS INBOX (BOGUS)")
    assert b" BAD " in t


def test_rename_inbox(pr):
    plain_instance(pr)
    pr.start("imapd")
    m = imaplib_login(pr)
    m.append("INBOX", None, None, msg("keep"))
    assert m.rename("INBOX", "Saved")[0] == "OK"
    assert m.select("INBOX")[1] == [b"0"]
    assert m.select("Saved")[1] == [b"1"]
    m.logout()


def test_sighup_and_sigterm(pr):
    plain_instance(pr)
    pr.start("imapd")
    r = Raw(pr)
    r.login()
    pr.signal("imapd", signal.SIGHUP)
    r.ok("NOOP")
    m = imaplib_login(pr)
    m.select("INBOX")
    pr.stop("imapd")        # asserts exit 0 and a clean sanitizer log


def _make_cert(d, cn):
    import os
    import subprocess
    cert, key = os.path.join(d, cn + ".pem"), os.path.join(d, cn + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "2", "-subj",
                    "/CN=" + cn], check=True, capture_output=True)
    return cert, key


def test_sighup_reloads_certificate(pr):
    import os
    import shutil
    import ssl
    import time
    c1, k1 = _make_cert(pr.dir, "first.test")
    c2, k2 = _make_cert(pr.dir, "second.test")
    cert, key = os.path.join(pr.dir, "live.pem"), os.path.join(pr.dir, "live.key")
    shutil.copy(c1, cert)
    shutil.copy(k1, key)
    pr.write_config(tls_cert=cert, tls_key=key)
    pr.add_user("alice@example.test")
    pr.start("imapd")

    def served():
        s = pr.connect("imaps", tls=True)
        der = s.getpeercert(binary_form=True)
        s.close()
        return ssl.DER_cert_to_PEM_cert(der)

    def pem(path):
        with open(path) as f:
            return ssl.DER_cert_to_PEM_cert(ssl.PEM_cert_to_DER_cert(f.read()))
    assert served() == pem(c1)
    shutil.copy(c2, cert)
    shutil.copy(k2, key)
    pr.signal("imapd", signal.SIGHUP)
    deadline = time.time() + 60 * WRAP_SCALE
    while served() != pem(c2) and time.time() < deadline:
        time.sleep(0.1)
    assert served() == pem(c2)


def test_partial_chunks_over_tls_match_size(pr):
    """Thunderbird's chunked download over IMAPS: BODY[]<off.65536> pieces
    add up to RFC822.SIZE exactly, the last chunk may start past the end."""
    pr.add_user("alice@example.test")
    pr.start("imapd")
    r = Raw(pr, "imaps", tls=True)
    r.login()
    big = b"Subject: big\r\n\r\n" + b"".join(
        b"%06d the quick brown fox jumps over the lazy dog\r\n" % i
        for i in range(5000))
    r.send(b"a APPEND INBOX {%d}\r\n" % len(big))
    assert r.line().startswith(b"+ ")
    r.send(big + b"\r\n")
    assert r.until("a")[1].startswith(b"a OK")
    r.ok("SELECT INBOX")
    unt, t = r.ok("UID FETCH 1 (UID RFC822.SIZE)")
    size = int(re.search(rb"RFC822.SIZE (\d+)", unt[0]).group(1))
    assert size == len(big)
    got, off = b"", 0
    while off <= size:
        unt, t = r.ok("UID FETCH 1 (UID BODY.PEEK[]<%d.65536>)" % off)
        m = re.search(rb"BODY\[\]<(\d+)> \{(\d+)\}\r\n", unt[0])
        assert int(m.group(1)) == off
        n = int(m.group(2))
        got += unt[0][m.end():m.end() + n]
        off += 65536
    assert got == big


def test_list_wildcard_runs(pr):
    plain_instance(pr)
    pr.start("imapd")
    r = Raw(pr)
    r.login()
    r.ok("CREATE a/b/c")
    unt, _ = r.ok('LIST "" "%%%%"')
    assert b'"a"' in b"".join(unt) and b'"a/b"' not in b"".join(unt)
    unt, _ = r.ok('LIST "" "a%*%"')
    assert len(unt) == 3
    unt, _ = r.ok('LIST "" "' + "*%" * 500 + '"')
    assert any(b'"a/b/c"' in u for u in unt)
    unt, _ = r.ok('LIST "" "' + "x*" * 500 + '"')
    assert unt == []
