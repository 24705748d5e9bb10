"""pop3d end to end with Python's poplib and raw sockets: every RFC 1939
command, CAPA, STLS and POP3S, AUTH PLAIN/LOGIN (with and without an
initial response), maildrop semantics (snapshot, DELE/RSET/QUIT, dropped
connections, IN-USE), UIDL stability and byte-exact RETR. Mail is delivered
through smtpd."""
import itertools
import poplib
import signal
import socket

import pytest

from lib import PASSWORD, Instance, client_tls_context, deliver
from lib.pop3 import Raw, need_smtpd, simple_msg

_n = itertools.count()


@pytest.fixture(scope="module")
def inst():
    need_smtpd()
    p = Instance()
    try:
        p.start("smtpd", "pop3d")
        yield p
    finally:
        p.stop_all()


def new_user(inst, nmsgs=0):
    addr = f"u{next(_n)}@example.test"
    inst.add_user(addr)
    for i in range(nmsgs):
        deliver(inst, addr, simple_msg(i + 1))
    return addr


def pop_ssl(inst):
    return poplib.POP3_SSL("127.0.0.1", inst.port("pop3s"),
                           context=client_tls_context(), timeout=30)


def test_capa_before_tls_refuses_plaintext(inst):
    p = poplib.POP3("127.0.0.1", inst.port("pop3"), timeout=30)
    caps = p.capa()
    assert "STLS" in caps and "UIDL" in caps and "TOP" in caps
    assert "PIPELINING" in caps and "RESP-CODES" in caps
    assert "AUTH-RESP-CODE" in caps and "IMPLEMENTATION" in caps
    assert "USER" not in caps and "SASL" not in caps
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        p.user("nobody@example.test")
    r = Raw(p.sock)
    assert r.cmd("AUTH PLAIN AGEAYg==").startswith(b"-ERR [AUTH]")
    p.quit()


def test_stls_then_every_command(inst):
    user = new_user(inst, 3)
    p = poplib.POP3("127.0.0.1", inst.port("pop3"), timeout=30)
    p.stls(client_tls_context())
    caps = p.capa()
    assert "USER" in caps and caps["SASL"] == ["PLAIN", "LOGIN"]
    assert "STLS" not in caps
    p.user(user)
    assert p.pass_(PASSWORD).startswith(b"+OK")
    count, size = p.stat()
    assert count == 3
    resp, listing, _ = p.list()
    sizes = [int(x.split()[1]) for x in listing]
    assert sum(sizes) == size and len(sizes) == 3
    assert p.list(2).split()[2] == str(sizes[1]).encode()
    resp, uidls, _ = p.uidl()
    uids = [x.split()[1] for x in uidls]
    assert len(set(uids)) == 3
    for u in uids:
        assert 0 < len(u) <= 70 and all(0x21 <= c <= 0x7e for c in u)
    assert p.uidl(3).split()[2] == uids[2]
    resp, lines, octets = p.retr(1)
    assert b"Subject: message 1" in lines and b"Body of message 1." in lines
    resp, lines, _ = p.top(2, 0)
    assert lines[-1] == b"" and b"Subject: message 2" in lines
    assert b"Body of message 2." not in lines
    assert p.noop().startswith(b"+OK")
    assert p.dele(1).startswith(b"+OK")
    assert p.stat() == (2, size - sizes[0])
    with pytest.raises(poplib.error_proto):
        p.retr(1)
    with pytest.raises(poplib.error_proto):
        p.dele(1)
    with pytest.raises(poplib.error_proto):
        p.list(1)
    assert p.rset().startswith(b"+OK")
    assert p.stat() == (3, size)
    # CAPA after login: no auth-related capabilities
    caps = p.capa()
    assert "USER" not in caps and "STLS" not in caps and "UIDL" in caps
    assert p.quit().startswith(b"+OK")
    p = pop_ssl(inst)
    p.user(user)
    p.pass_(PASSWORD)
    assert p.stat()[0] == 3        # RSET undid the DELE
    p.quit()


def test_pop3s_auth_plain_initial_response(inst):
    import base64
    user = new_user(inst, 1)
    r = Raw.connect(inst, tls=True)
    ir = base64.b64encode(b"\0" + user.encode() + b"\0" + PASSWORD.encode()).decode()
    assert r.cmd("AUTH PLAIN " + ir).startswith(b"+OK")
    assert r.cmd("STAT").startswith(b"+OK 1 ")
    assert r.cmd("QUIT").startswith(b"+OK")


def test_auth_plain_and_login_without_initial_response(inst):
    import base64
    user = new_user(inst, 1)
    r = Raw.connect(inst, tls=True)
    assert r.cmd("AUTH PLAIN") == b"+ "
    ir = base64.b64encode(b"\0" + user.encode() + b"\0" + PASSWORD.encode())
    assert r.cmd(ir).startswith(b"+OK")
    r.cmd("QUIT")
    r = Raw.connect(inst, tls=True)
    assert r.cmd("AUTH LOGIN").startswith(b"+ ")
    assert r.cmd(base64.b64encode(user.encode())).startswith(b"+ ")
    assert r.cmd(base64.b64encode(PASSWORD.encode())).startswith(b"+OK")
    r.cmd("QUIT")
    # cancel, bad base64, unknown mechanism, old-style AUTH listing
    r = Raw.connect(inst, tls=True)
    assert r.cmd("AUTH PLAIN") == b"+ "
    assert r.cmd("*").startswith(b"-ERR")
    assert r.cmd("AUTH PLAIN !!!notbase64").startswith(b"-ERR")
    assert r.cmd("AUTH CRAM-MD5").startswith(b"-ERR")
    assert r.cmd("AUTH") == b"+OK"
    assert r.multi() == b"PLAIN\r\nLOGIN\r\n"
    # an authorization identity other than the user is refused
    ir = base64.b64encode(b"other@example.test\0" + user.encode() + b"\0" + PASSWORD.encode())
    assert r.cmd(b"AUTH PLAIN " + ir).startswith(b"-ERR [AUTH]")
    r.cmd("QUIT")


def test_wrong_password_and_unknown_user(inst):
    user = new_user(inst)
    r = Raw.connect(inst, tls=True)
    assert r.cmd("USER " + user).startswith(b"+OK")
    assert r.cmd("PASS wrong").startswith(b"-ERR [AUTH]")
    assert r.cmd("USER nobody@example.test").startswith(b"+OK")
    assert r.cmd("PASS " + PASSWORD).startswith(b"-ERR [AUTH]")
    assert r.cmd("PASS x").startswith(b"-ERR")          # no USER pending
    r.login(user)                                       # still possible
    r.cmd("QUIT")


def test_commands_in_wrong_state(inst):
    r = Raw.connect(inst, tls=True)
    for c in ("STAT", "LIST", "RETR 1", "DELE 1", "TOP 1 0", "UIDL", "RSET", "NOOP"):
        assert r.cmd(c).startswith(b"-ERR"), c
    user = new_user(inst, 1)
    r.login(user)
    for c in ("USER x", "PASS y", "STLS", "AUTH PLAIN"):
        assert r.cmd(c).startswith(b"-ERR"), c
    assert r.cmd("STAT").startswith(b"+OK 1 ")
    r.cmd("QUIT")


def test_snapshot_at_login(inst):
    user = new_user(inst, 2)
    r = Raw.connect(inst, tls=True)
    r.login(user)
    assert r.cmd("STAT").startswith(b"+OK 2 ")
    deliver(inst, user, simple_msg(3))
    assert r.cmd("STAT").startswith(b"+OK 2 ")
    assert r.cmd("LIST 3").startswith(b"-ERR")
    assert r.cmd("LIST") .startswith(b"+OK")
    assert r.multi().count(b"\r\n") == 2
    assert r.cmd("QUIT").startswith(b"+OK")
    r = Raw.connect(inst, tls=True)
    r.login(user)
    assert r.cmd("STAT").startswith(b"+OK 3 ")
    r.cmd("QUIT")


def test_dele_quit_expunges_and_drop_deletes_nothing(inst):
    user = new_user(inst, 3)
    r = Raw.connect(inst, tls=True)
    r.login(user)
    assert r.cmd("UIDL 2").startswith(b"+OK 2 ")
    assert r.cmd("DELE 1").startswith(b"+OK")
    assert r.cmd("DELE 3").startswith(b"+OK")
    r.close()                                   # dropped without QUIT
    r = Raw.connect(inst, tls=True)
    r.login(user)
    assert r.cmd("STAT").startswith(b"+OK 3 ")
    assert r.cmd("UIDL")
    before = r.multi().split(b"\r\n")[:3]
    assert r.cmd("DELE 1").startswith(b"+OK")
    assert r.cmd("DELE 3").startswith(b"+OK")
    assert r.cmd("QUIT").startswith(b"+OK")
    assert r.is_closed()
    assert len(inst.maildir_files(user)) == 1
    r = Raw.connect(inst, tls=True)
    r.login(user)
    assert r.cmd("STAT").startswith(b"+OK 1 ")
    # the survivor keeps its UIDL, now as message 1
    assert r.cmd("UIDL 1") == b"+OK 1 " + before[1].split()[1]
    r.cmd("QUIT")


def test_uidl_stable_across_sessions(inst):
    user = new_user(inst, 3)
    seen = []
    for _ in range(2):
        r = Raw.connect(inst, tls=True)
        r.login(user)
        r.cmd("UIDL")
        seen.append(r.multi())
        r.cmd("QUIT")
    assert seen[0] == seen[1]
    deliver(inst, user, simple_msg(4))
    r = Raw.connect(inst, tls=True)
    r.login(user)
    r.cmd("UIDL")
    now = r.multi()
    assert now.startswith(seen[0]) and now.count(b"\r\n") == 4
    r.cmd("QUIT")


def test_in_use(inst):
    user = new_user(inst, 1)
    a = Raw.connect(inst, tls=True)
    a.login(user)
    b = Raw.connect(inst, tls=True)
    assert b.cmd("USER " + user).startswith(b"+OK")
    assert b.cmd("PASS " + PASSWORD).startswith(b"-ERR [IN-USE]")
    assert b.cmd("NOOP").startswith(b"-ERR")        # still not logged in
    assert a.cmd("QUIT").startswith(b"+OK")
    assert a.is_closed()
    b.login(user)
    assert b.cmd("STAT").startswith(b"+OK 1 ")
    b.close()                                       # dropping unlocks too
    c = Raw.connect(inst, tls=True)
    c.login(user)
    c.cmd("QUIT")


def test_pipelining(inst):
    user = new_user(inst, 3)
    r = Raw.connect(inst, tls=True)
    r.login(user)
    r.send("STAT\r\nRETR 1\r\nLIST 2\r\nTOP 3 0\r\nBOGUS\r\nUIDL 1\r\nNOOP\r\n")
    assert r.line().startswith(b"+OK 3 ")
    assert r.line().startswith(b"+OK")
    assert b"message 1" in r.multi()
    assert r.line().startswith(b"+OK 2 ")
    assert r.line() == b"+OK"
    assert b"message 3" in r.multi()
    assert r.line().startswith(b"-ERR")
    assert r.line().startswith(b"+OK 1 ")
    assert r.line().startswith(b"+OK")
    r.cmd("QUIT")


def test_sighup_keeps_serving(inst):
    user = new_user(inst, 1)
    inst.signal("pop3d", signal.SIGHUP)
    r = Raw.connect(inst, tls=True)
    r.login(user)
    assert r.cmd("STAT").startswith(b"+OK 1 ")
    r.cmd("QUIT")


def test_plaintext_allowed_when_configured():
    need_smtpd()
    p = Instance({"allow_plaintext_auth": "yes"})
    try:
        p.start("smtpd", "pop3d")
        user = "plain@example.test"
        p.add_user(user)
        deliver(p, user, simple_msg(1))
        c = poplib.POP3("127.0.0.1", p.port("pop3"), timeout=30)
        caps = c.capa()
        assert "USER" in caps and "SASL" in caps
        c.user(user)
        c.pass_(PASSWORD)
        assert c.stat()[0] == 1
        c.quit()
    finally:
        p.stop_all()


def test_idle_timeout():
    p = Instance({"preauth_timeout": "1"})
    try:
        p.start("pop3d")
        s = socket.create_connection(("127.0.0.1", p.port("pop3")), timeout=30)
        r = Raw(s)
        assert r.line().startswith(b"+OK")
        # no input: the server says goodbye and closes
        assert r.line().startswith(b"-ERR")
        assert r.is_closed()
    finally:
        p.stop_all()


def test_imap_sees_pop3_expunge():
    """QUIT's expunge is one store transaction that a concurrent IMAP
    session sees as EXPUNGE; IMAP may be used during a POP3 session."""
    import imaplib
    import time
    from lib.pop3 import HAVE_IMAPD
    need_smtpd()
    if not HAVE_IMAPD:
        pytest.skip("needs imapd (not built yet)")
    p = Instance()
    try:
        p.start("smtpd", "pop3d", "imapd")
        user = "both@example.test"
        p.add_user(user)
        for i in range(3):
            deliver(p, user, simple_msg(i + 1))
        im = imaplib.IMAP4_SSL("127.0.0.1", p.port("imaps"),
                               ssl_context=client_tls_context())
        im.login(user, PASSWORD)
        assert im.select("INBOX")[1] == [b"3"]
        r = Raw.connect(p, tls=True)
        r.login(user)
        assert r.cmd("DELE 1").startswith(b"+OK")
        assert r.cmd("DELE 3").startswith(b"+OK")
        im.noop()
        assert im.response("EXPUNGE")[1] == [None]     # nothing yet
        assert r.cmd("QUIT").startswith(b"+OK")
        seen = []
        for _ in range(50):
            im.noop()
            got = im.response("EXPUNGE")[1]
            seen += [x for x in got if x is not None]
            if len(seen) == 2:
                break
            time.sleep(0.1)
        # "3 then 1" or "1 then 2": either way two EXPUNGE responses
        assert len(seen) == 2, seen
        assert im.select("INBOX")[1] == [b"1"]
        im.logout()
    finally:
        p.stop_all()


def test_retr_marks_seen_at_quit(inst):
    """RETR (not TOP) sets \\Seen at QUIT, so IMAP shows it read; a dropped
    session changes no flags. The maildir file names mirror \\Seen."""
    import os

    def seen_flags(user):
        out = {}
        for f in inst.maildir_files(user):
            name = os.path.basename(f)
            info = name.split(":2,", 1)[1] if ":2," in name else ""
            out[name.split(":2,")[0]] = "S" in info
        return sorted(out.values())

    user = new_user(inst, 3)
    assert seen_flags(user) == [False, False, False]
    r = Raw.connect(inst, tls=True)
    r.login(user)
    assert r.cmd("RETR 1").startswith(b"+OK")
    r.multi()
    r.close()                                   # dropped: nothing changes
    r = Raw.connect(inst, tls=True)
    r.login(user)
    assert seen_flags(user) == [False, False, False]
    for c in ("RETR 1", "TOP 2 0", "RETR 3"):
        assert r.cmd(c).startswith(b"+OK")
        r.multi()
    assert r.cmd("DELE 3").startswith(b"+OK")
    assert r.cmd("QUIT").startswith(b"+OK")
    assert r.is_closed()
    assert seen_flags(user) == [False, True]


def test_sighup_reloads_certificate():
    import os
    import shutil
    import ssl as ssl_mod
    import subprocess
    import time
    p = Instance()
    try:
        cert, key = os.path.join(p.dir, "cert.pem"), os.path.join(p.dir, "key.pem")
        shutil.copy(p.cert, cert)
        shutil.copy(p.key, key)
        p.write_config(tls_cert=cert, tls_key=key)
        p.start("pop3d")

        def served():
            s = p.connect("pop3s", tls=True)
            der = s.getpeercert(binary_form=True)
            s.close()
            return der

        before = served()
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", key + ".new", "-out", cert + ".new", "-days", "2",
                        "-subj", "/CN=reloaded.example.test"], check=True, capture_output=True)
        os.replace(key + ".new", key)
        os.replace(cert + ".new", cert)
        p.signal("pop3d", signal.SIGHUP)
        for _ in range(100):
            if served() != before:
                break
            time.sleep(0.1)
        after = served()
        assert after != before
        assert ssl_mod.DER_cert_to_PEM_cert(after) == open(cert).read()
    finally:
        p.stop_all()


def test_auth_failures_close_session():
    """Each wrong password is answered -ERR [AUTH] after a growing delay;
    the third in a session closes it. A good login still works after."""
    p = Instance()
    try:
        p.start("pop3d")
        user = "af@example.test"
        p.add_user(user)
        r = Raw.connect(p, tls=True, timeout=60)
        for i in range(3):
            assert r.cmd("USER " + user).startswith(b"+OK")
            resp = r.cmd("PASS wrong%d" % i)
            assert resp.startswith(b"-ERR [AUTH]"), resp
        assert r.is_closed()
        r = Raw.connect(p, tls=True, timeout=60)
        r.login(user)
        assert r.cmd("STAT") == b"+OK 0 0"
        r.cmd("QUIT")
    finally:
        p.stop_all()
