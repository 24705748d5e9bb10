"""smtpd's milters and DNS blocklists end to end: a test milter written with
python3-milter (testmilter.py) for every reply, small raw milters that
misbehave (garbage, closing, stalling, down), DNSBL zones served by the
outbound rig's DNS server, and a real rspamd in milter mode (test_rspamd.py).
Where a message landed is read over IMAP."""
import importlib.util
import imaplib
import os
import smtplib
import socket
import subprocess
import threading
import time

import pytest

from lib import instance as harness  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ALICE = "alice@example.test"
BOB = "bob@example.test"
REFUSED = "refused@example.test"   # the test milter refuses it at RCPT
STALL = "stall@example.test"       # the test milter never answers its RCPT


def have_pymilter():
    r = subprocess.run(["/usr/bin/python3", "-c", "import Milter"], capture_output=True)
    return r.returncode == 0


class PyMilter:
    def __init__(self):
        self.port = harness.free_port()
        self.p = subprocess.Popen(["/usr/bin/python3", os.path.join(HERE, "testmilter.py"),
                                   str(self.port)], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        assert self.p.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("test milter did not listen")

    def stop(self):
        self.p.kill()
        self.p.wait()


class RawMilter:
    """A milter that answers the option negotiation, then misbehaves:
    'garbage' (bytes that are no packet), 'close' (hangs up mid-message),
    'stall' (never answers after the negotiation)."""

    def __init__(self, mode):
        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        try:
            c.recv(17)
            c.sendall(b"\0\0\0\x0dO\0\0\0\x06\0\0\0\x31\0\0\0\0")
            c.recv(65536)
            if self.mode == "garbage":
                c.sendall(b"\0\0\0\x02Z?")
            elif self.mode == "close":
                c.close()
                return
            while c.recv(65536):
                pass
        except OSError:
            pass

    def stop(self):
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


def start(config):
    inst = harness.Instance(extra_config=config)
    for u in (ALICE, BOB, REFUSED, STALL):
        inst.add_user(u)
    inst.start("smtpd", "imapd")
    return inst


def send(inst, action=None, rcpts=(ALICE,), extra="", subject="milter test"):
    hdr = f"From: <carol@sender.test>\r\nTo: <{rcpts[0]}>\r\nSubject: {subject}\r\n"
    if action:
        hdr += f"X-Test-Action: {action}\r\n"
    msg = hdr + extra + "\r\nHello from the milter test.\r\n"
    s = smtplib.SMTP("127.0.0.1", inst.port("smtp"), timeout=120)
    try:
        s.ehlo("client.sender.test")
        s.mail("carol@sender.test")
        for r in rcpts:
            s.rcpt(r)
        try:
            code, text = s.data(msg.encode())
        except smtplib.SMTPDataError as e:
            code, text = e.smtp_code, e.smtp_error
        s.quit()
    finally:
        s.close()
    return code, text.decode() if isinstance(text, bytes) else text


def mailbox(inst, user, box):
    """The messages of user's mailbox, as bytes."""
    m = imaplib.IMAP4("127.0.0.1", inst.port("imap"))
    try:
        m.starttls(ssl_context=harness.client_tls_context())
        m.login(user, harness.PASSWORD)
        typ, _ = m.select(box, readonly=True)
        assert typ == "OK"
        _, data = m.search(None, "ALL")
        out = []
        for n in data[0].split():
            _, d = m.fetch(n, "(BODY.PEEK[])")
            out.append(d[0][1])
        return out
    finally:
        m.logout()


@pytest.fixture(scope="module")
def milter():
    if not have_pymilter():
        pytest.skip("python3-milter is not installed")
    t = PyMilter()
    yield t
    t.stop()


@pytest.fixture(scope="module")
def inst(milter):
    i = start({"milter": f"inet:127.0.0.1:{milter.port}"})
    yield i
    i.stop_all()


def test_continue_delivers_and_milter_saw_everything(inst):
    code, _ = send(inst, subject="plain one")
    assert code == 250
    msgs = [m for m in mailbox(inst, ALICE, "INBOX") if b"plain one" in m]
    assert len(msgs) == 1
    assert b"X-Milter-Seen: connect helo mail rcpt eoh body\r\n" in msgs[0]


def test_reject_with_replycode(inst):
    code, text = send(inst, "reject", subject="rejected one")
    assert code == 554
    assert "5.7.1 Rejected by the test milter" in text
    assert not [m for m in mailbox(inst, ALICE, "INBOX") if b"rejected one" in m]


def test_reject_plain(inst):
    code, text = send(inst, "reject-plain")
    assert code == 550 and "5.7.1" in text


# ---- verdicts at the commands themselves ----

def test_reject_at_mail(inst):
    """A sender the milter refuses gets its 5xx at MAIL; the session goes on
    and the next transaction is delivered."""
    s = smtplib.SMTP("127.0.0.1", inst.port("smtp"), timeout=120)
    try:
        s.ehlo("client.sender.test")
        code, text = s.docmd("MAIL", "FROM:<mailreject@sender.test>")
        assert code == 550 and b"5.7.1 Sender refused by the test milter" in text
        code, _ = s.docmd("RCPT", f"TO:<{ALICE}>")
        assert code == 503                      # no transaction was opened
        s.sendmail("carol@sender.test", [ALICE],
                   b"Subject: after a refused sender\r\n\r\nhi\r\n")
        s.quit()
    finally:
        s.close()
    msgs = [m for m in mailbox(inst, ALICE, "INBOX") if b"after a refused sender" in m]
    assert len(msgs) == 1
    # The refused MAIL was seen (at MAIL), then the accepted one.
    assert b"X-Milter-Seen: connect helo mail mail rcpt eoh body\r\n" in msgs[0]


def test_reject_one_rcpt_of_two(inst):
    """The milter refuses one recipient at RCPT: that one gets the 550 then
    and there, the other gets the message."""
    s = smtplib.SMTP("127.0.0.1", inst.port("smtp"), timeout=120)
    try:
        s.ehlo("client.sender.test")
        assert s.docmd("MAIL", "FROM:<carol@sender.test>")[0] == 250
        assert s.docmd("RCPT", f"TO:<{ALICE}>")[0] == 250
        code, text = s.docmd("RCPT", f"TO:<{REFUSED}>")
        assert code == 550 and b"Recipient refused at RCPT by the test milter" in text
        code, _ = s.data(b"Subject: one of two\r\n\r\nhi\r\n")
        assert code == 250
        s.quit()
    finally:
        s.close()
    assert [m for m in mailbox(inst, ALICE, "INBOX") if b"one of two" in m]
    assert not [m for m in mailbox(inst, REFUSED, "INBOX") if b"one of two" in m]


def test_tempfail_at_helo(inst):
    s = smtplib.SMTP("127.0.0.1", inst.port("smtp"), timeout=120)
    try:
        code, text = s.ehlo("tempfail.helo.test")
        assert code == 451 and b"HELO deferred by the test milter" in text
        # Not greeted: no transaction yet.
        assert s.docmd("MAIL", "FROM:<carol@sender.test>")[0] == 503
        assert s.ehlo("client.sender.test")[0] == 250
        s.sendmail("carol@sender.test", [ALICE], b"Subject: after helo\r\n\r\nhi\r\n")
        s.quit()
    finally:
        s.close()
    assert [m for m in mailbox(inst, ALICE, "INBOX") if b"after helo" in m]


@pytest.mark.parametrize("policy", ["tempfail", "accept"])
def test_milter_stalls_at_rcpt(milter, policy):
    """The milter never answers one RCPT: after milter_timeout it is dropped
    for the session; the recipient is not refused for our filter's trouble,
    and the message is deferred at its end (tempfail) or goes on unfiltered
    (accept)."""
    i = start({"milter": f"inet:127.0.0.1:{milter.port}", "milter_failure": policy,
               "milter_timeout": "2s"})
    try:
        s = smtplib.SMTP("127.0.0.1", i.port("smtp"), timeout=120)
        try:
            s.ehlo("client.sender.test")
            assert s.docmd("MAIL", "FROM:<carol@sender.test>")[0] == 250
            assert s.docmd("RCPT", f"TO:<{STALL}>")[0] == 250
            assert s.docmd("RCPT", f"TO:<{ALICE}>")[0] == 250
            try:
                code, text = s.data(b"Subject: stalled rcpt\r\n\r\nhi\r\n")
            except smtplib.SMTPDataError as e:
                code, text = e.smtp_code, e.smtp_error
            s.quit()
        finally:
            s.close()
        got = [m for m in mailbox(i, ALICE, "INBOX") if b"stalled rcpt" in m]
        if policy == "tempfail":
            assert code == 451 and b"4.7.1" in text
            assert not got
        else:
            assert code == 250
            assert len(got) == 1 and b"X-Milter-Seen" not in got[0]
        assert "timed out" in i.log("smtpd")
    finally:
        i.stop_all()


def test_recipient_reject(inst):
    code, text = send(inst, rcpts=(ALICE, "rcptreject@example.test"))
    # rcptreject@ is not a user: smtpd refuses it at RCPT already.
    assert code in (250, 550)


def test_tempfail(inst):
    code, text = send(inst, "tempfail", subject="tempfailed one")
    assert code == 451 and "Try again later, says the milter" in text
    assert not [m for m in mailbox(inst, ALICE, "INBOX") if b"tempfailed one" in m]


def test_discard(inst):
    code, _ = send(inst, "discard", subject="discarded one")
    assert code == 250
    assert not [m for m in mailbox(inst, ALICE, "INBOX") if b"discarded one" in m]
    assert not [m for m in mailbox(inst, ALICE, "Junk") if b"discarded one" in m]


def test_quarantine_goes_to_junk(inst):
    code, _ = send(inst, "quarantine", rcpts=(ALICE, BOB), subject="quarantined one")
    assert code == 250
    for u in (ALICE, BOB):
        assert [m for m in mailbox(inst, u, "Junk") if b"quarantined one" in m]
        assert not [m for m in mailbox(inst, u, "INBOX") if b"quarantined one" in m]


@pytest.mark.parametrize("action", ["spam", "spamflag"])
def test_spam_mark_goes_to_junk(inst, action):
    subject = f"marked {action}"
    code, _ = send(inst, action, subject=subject)
    assert code == 250, inst.log("smtpd")[-3000:]
    junk = [m for m in mailbox(inst, ALICE, "Junk") if subject.encode() in m]
    assert len(junk) == 1
    assert b"\r\nX-Spam" in junk[0]


def test_header_changes(inst):
    code, _ = send(inst, "headers", subject="to be changed",
                   extra="X-Delete-Me: gone\r\n")
    assert code == 250
    msgs = [m for m in mailbox(inst, ALICE, "INBOX") if b"changed subject" in m]
    assert len(msgs) == 1
    m = msgs[0]
    head = m.split(b"\r\n\r\n", 1)[0] + b"\r\n"
    assert b"to be changed" not in m
    assert b"Subject: changed subject\r\n" in head
    assert b"X-Missing: now present\r\n" in head       # a change adds it
    assert b"X-Delete-Me" not in head
    assert b"X-Added: added value\r\n\tfolded\r\n" in head
    # Inserted at the top of the message's own header (after the trace).
    assert head.index(b"X-First: on top\r\n") < head.index(b"From: <carol@")
    # Every line ends with CRLF.
    assert b"\n" not in m.replace(b"\r\n", b"")


def test_submission_is_not_filtered(inst):
    s = smtplib.SMTP("127.0.0.1", inst.port("submission"), timeout=120)
    try:
        s.starttls(context=harness.client_tls_context())
        s.login(ALICE, harness.PASSWORD)
        s.sendmail(ALICE, [BOB], ("From: <alice@example.test>\r\nSubject: submitted spam\r\n"
                                  "X-Test-Action: reject\r\nX-Spam: Yes\r\n\r\nhi\r\n").encode())
        s.quit()
    finally:
        s.close()
    msgs = [m for m in mailbox(inst, BOB, "INBOX") if b"submitted spam" in m]
    assert len(msgs) == 1 and b"X-Milter-Seen" not in msgs[0]


@pytest.mark.parametrize("mode", ["garbage", "close", "stall", "down"])
@pytest.mark.parametrize("policy", ["tempfail", "accept"])
def test_milter_failure(mode, policy):
    raw = None
    if mode == "down":
        port = harness.free_port()
    else:
        raw = RawMilter(mode)
        port = raw.port
    i = start({"milter": f"inet:127.0.0.1:{port}", "milter_failure": policy,
               "milter_timeout": "2s"})
    try:
        subject = f"failure {mode} {policy}"
        code, text = send(i, subject=subject)
        got = [m for m in mailbox(i, ALICE, "INBOX") if subject.encode() in m]
        if policy == "tempfail":
            assert code == 451 and "4.7.1" in text
            assert not got
        else:
            assert code == 250
            assert len(got) == 1
        assert "milter inet:127.0.0.1" in i.log("smtpd")
    finally:
        i.stop_all()
        if raw:
            raw.stop()


def test_two_milters_in_order(milter):
    """The first milter's reject wins; a down second milter with
    milter_failure = accept is skipped."""
    dead = harness.free_port()
    i = start({"milter": f"inet:127.0.0.1:{milter.port}, inet:127.0.0.1:{dead}",
               "milter_failure": "accept"})
    try:
        code, _ = send(i, subject="two milters")
        assert code == 250
        assert [m for m in mailbox(i, ALICE, "INBOX") if b"two milters" in m]
        code, text = send(i, "reject")
        assert code == 554
    finally:
        i.stop_all()


def load_rig():
    path = os.path.join(HERE, "..", "outbound", "rig.py")
    spec = importlib.util.spec_from_file_location("postroom_outbound_rig", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("listed", [True, False])
def test_dnsbl(listed):
    """127.0.0.1 listed in bl.test: 554 5.7.1 naming the list instead of
    the greeting, nothing stored; not listed: a normal session. A second
    zone that does not answer for the address changes nothing."""
    rig = load_rig()
    dns = rig.DNS(harness.free_port())
    if listed:
        dns.a("1.0.0.127.bl.test", "127.0.0.2")
    dns.a("other.ok.test", "127.0.0.9")
    i = start({"dnsbl": "ok.test, bl.test", "dns_servers": f"127.0.0.1:{dns.port}"})
    try:
        s = socket.create_connection(("127.0.0.1", i.port("smtp")), timeout=60)
        f = s.makefile("rb")
        line = f.readline()
        if listed:
            assert line.startswith(b"554 5.7.1 ") and b"bl.test" in line, line
            assert f.readline() == b""     # closed
        else:
            assert line.startswith(b"220 "), line
            s.sendall(b"QUIT\r\n")
            assert f.readline().startswith(b"221")
        s.close()
        # The submission listener is never checked.
        s = socket.create_connection(("127.0.0.1", i.port("submission")), timeout=60)
        assert s.makefile("rb").readline().startswith(b"220 ")
        s.close()
        if listed:
            assert "dnsbl listed=bl.test" in i.log("smtpd")
    finally:
        i.stop_all()
        dns.stop()


def wait_log(inst, name, text):
    """Waits for a line in a daemon's log (no time bound: an event)."""
    while text not in inst.log(name):
        time.sleep(0.05)


def test_dnsbl_delay_and_shutdown():
    """A listed client gets its 554 no sooner than dnsbl_delay after it
    connected (a lower bound only: a slow machine just makes it later),
    while a client that is not listed is greeted without that wait being
    required; a shutdown during the wait answers the 554 at once instead of
    dropping the connection, and the daemon exits cleanly."""
    rig = load_rig()
    dns = rig.DNS(harness.free_port())
    dns.a("1.0.0.127.bl.test", "127.0.0.2")
    i = start({"dnsbl": "bl.test", "dnsbl_delay": "2s",
               "dns_servers": f"127.0.0.1:{dns.port}"})
    try:
        t0 = time.monotonic()
        s = socket.create_connection(("127.0.0.1", i.port("smtp")), timeout=120)
        f = s.makefile("rb")
        line = f.readline()
        waited = time.monotonic() - t0
        assert line.startswith(b"554 5.7.1 ") and b"bl.test" in line, line
        assert waited >= 1.9, waited
        assert f.readline() == b""
        s.close()
        assert "result=held" in i.log("smtpd")
    finally:
        i.stop_all()
    # A wait of an hour, cut short by SIGTERM: the 554 still goes out. The
    # client comes from 127.0.0.3 (listed), apart from the harness's own
    # probes of the port from 127.0.0.1, so that the log line is its own.
    dns.a("3.0.0.127.bl.test", "127.0.0.2")
    i = start({"dnsbl": "bl.test", "dnsbl_delay": "1h",
               "dns_servers": f"127.0.0.1:{dns.port}"})
    try:
        s = socket.create_connection(("127.0.0.1", i.port("smtp")), timeout=120,
                                     source_address=("127.0.0.3", 0))
        f = s.makefile("rb")
        wait_log(i, "smtpd", "ip=127.0.0.3 result=held")
        logname = i.logs["smtpd"].name
        i.stop("smtpd")
        line = f.readline()
        assert line.startswith(b"554 5.7.1 ") and b"bl.test" in line, \
            (line, open(logname).read()[-3000:])
        assert f.readline() == b""
        s.close()
    finally:
        i.stop_all()
        dns.stop()
