"""smtpd submission (587, STARTTLS) and SMTPS (465, implicit TLS): AUTH
only after TLS and required before MAIL, PLAIN and LOGIN, sender
ownership, the refusal of outbound relay, with smtplib and swaks."""
import base64
import smtplib
import subprocess

import pytest

from conftest import PASSWORD, client_tls_context
from smtp_testlib import (ALICE, BOB, CAROL, TEAM, Raw, find, message,
                          plain_ir, read_file, send_raw, setup_users,
                          submission_session, token)


@pytest.fixture(scope="module")
def smtp(srv):
    setup_users(srv)
    srv.start("smtpd")
    return srv


def test_no_auth_before_tls(smtp):
    r = Raw.connect(smtp, "submission")
    r.greeting()
    caps = r.ehlo()
    assert "STARTTLS" in caps and "AUTH" not in caps
    c, text = r.cmd(f"AUTH PLAIN {plain_ir(ALICE)}")
    assert (c, text[0][:5]) == (530, "5.7.0")
    c, text = r.cmd(f"MAIL FROM:<{ALICE}>")
    assert (c, text[0][:5]) == (530, "5.7.0")
    r.starttls()
    caps = r.ehlo()
    assert "AUTH PLAIN LOGIN" in caps and "STARTTLS" not in caps
    c, text = r.cmd(f"MAIL FROM:<{ALICE}>")
    assert (c, text[0][:5]) == (530, "5.7.0")
    r.expect("QUIT", 221)


@pytest.mark.parametrize("key", ["submission", "smtps"])
def test_auth_plain_and_send(smtp, key):
    tok = token()
    r = submission_session(smtp, key)
    caps = r.ehlo()
    assert "AUTH" not in caps            # not offered once authenticated
    send_raw(r, ALICE, [BOB, CAROL], message(tok))
    for u in (BOB, CAROL):
        head = read_file(find(smtp, u, tok)[0]).split(b"\r\n\r\n")[0].decode()
        assert " with ESMTPSA id " in head
        assert "\tfor <" not in head     # several recipients: no "for"
    c, text = r.cmd("AUTH PLAIN " + plain_ir(ALICE))
    assert c == 503
    r.expect("QUIT", 221)


def test_auth_login_challenges(smtp):
    r = Raw.connect(smtp, "smtps", tls=True)
    r.greeting()
    r.ehlo()
    c, text = r.cmd("AUTH LOGIN")
    assert (c, text[0]) == (334, "VXNlcm5hbWU6")
    c, text = r.cmd(base64.b64encode(ALICE.encode()).decode())
    assert (c, text[0]) == (334, "UGFzc3dvcmQ6")
    c, text = r.cmd(base64.b64encode(PASSWORD.encode()).decode())
    assert (c, text[0][:5]) == (235, "2.7.0")
    r.expect("QUIT", 221)


def test_auth_login_initial_response_and_plain_continuation(smtp):
    r = Raw.connect(smtp, "smtps", tls=True)
    r.greeting()
    r.ehlo()
    c, text = r.cmd("AUTH LOGIN " + base64.b64encode(ALICE.encode()).decode())
    assert (c, text[0]) == (334, "UGFzc3dvcmQ6")
    r.expect("*", 501)                   # cancelled
    c, text = r.cmd("AUTH PLAIN")
    assert c == 334
    r.expect(plain_ir(ALICE), 235)
    r.expect("QUIT", 221)


def test_auth_bad_input(smtp):
    r = Raw.connect(smtp, "smtps", tls=True)
    r.greeting()
    r.ehlo()
    c, text = r.cmd("AUTH CRAM-MD5")
    assert (c, text[0][:5]) == (504, "5.5.4")
    c, text = r.cmd("AUTH PLAIN !!!notbase64")
    assert (c, text[0][:5]) == (501, "5.5.2")
    c, text = r.cmd("AUTH PLAIN " + plain_ir(ALICE, "wrong-password"))
    assert (c, text[0][:5]) == (535, "5.7.8")
    r.expect("AUTH PLAIN " + plain_ir(ALICE), 235)
    r.expect("QUIT", 221)


def test_sender_must_be_owned(smtp):
    tok = token()
    r = submission_session(smtp, "smtps")
    c, text = r.cmd(f"MAIL FROM:<{BOB}>")
    assert (c, text[0][:5]) == (553, "5.7.1")
    c, text = r.cmd("MAIL FROM:<>")
    assert c == 553
    r.expect("MAIL FROM:<Alice+news@Example.Test>", 250)
    r.expect("RSET", 250)
    # alice owns the alias team@ (it resolves to her, among others)
    send_raw(r, TEAM, [CAROL], message(tok, frm=TEAM, to=CAROL))
    r.expect("QUIT", 221)


def test_outbound_relay_not_configured(smtp):
    # Outbound mail exists now: a remote recipient of an authenticated
    # session is accepted for the queue (tests/proto/submission/).
    r = submission_session(smtp, "submission")
    r.expect(f"MAIL FROM:<{ALICE}>", 250)
    r.expect("RCPT TO:<friend@elsewhere.test>", 250)
    c, text = r.cmd("RCPT TO:<nobody@example.test>")
    assert (c, text[0][:5]) == (550, "5.1.1")
    r.expect(f"RCPT TO:<{BOB}>", 250)
    r.expect("QUIT", 221)


def test_smtplib_starttls_login(smtp):
    tok = token()
    with smtplib.SMTP("127.0.0.1", smtp.port("submission"), timeout=10) as c:
        c.starttls(context=client_tls_context())
        c.login(ALICE, PASSWORD)
        assert c.sendmail(ALICE, [BOB], message(tok)) == {}
    assert len(find(smtp, BOB, tok)) == 1


def test_smtplib_smtps_auth_login(smtp):
    tok = token()
    with smtplib.SMTP_SSL("127.0.0.1", smtp.port("smtps"), timeout=10,
                          context=client_tls_context()) as c:
        c.user, c.password = ALICE, PASSWORD
        c.ehlo()
        c.auth("LOGIN", c.auth_login)
        assert c.sendmail(ALICE, [BOB], message(tok)) == {}
    assert len(find(smtp, BOB, tok)) == 1


def swaks(*args):
    return subprocess.run(["swaks", "--server", "127.0.0.1", *args],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("key,mode,auth", [
    ("smtp", [], None),
    ("smtp", ["--tls"], None),
    ("submission", ["--tls"], "PLAIN"),
    ("submission", ["--tls"], "LOGIN"),
    ("smtps", ["--tls-on-connect"], "PLAIN"),
    ("smtps", ["--tls-on-connect", "--pipeline"], "LOGIN"),
])
def test_swaks(smtp, key, mode, auth):
    tok = token()
    args = ["--port", str(smtp.port(key)), *mode, "--from", ALICE,
            "--to", BOB, "--header", f"Subject: swaks {tok}",
            "--body", f"body {tok}"]
    if auth:
        args += ["--auth", auth, "--auth-user", ALICE,
                 "--auth-password", PASSWORD]
    r = swaks(*args)
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(find(smtp, BOB, tok)) == 1


def test_swaks_refusals(smtp):
    # no AUTH on submission: refused at MAIL (23)
    r = swaks("--port", str(smtp.port("submission")), "--tls",
              "--from", ALICE, "--to", BOB)
    assert r.returncode == 23, r.stdout
    # open relay attempt on the MX port: no recipient accepted (24)
    r = swaks("--port", str(smtp.port("smtp")), "--from", ALICE,
              "--to", "victim@elsewhere.test")
    assert r.returncode == 24, r.stdout
    # wrong password (28)
    r = swaks("--port", str(smtp.port("smtps")), "--tls-on-connect",
              "--auth", "PLAIN", "--auth-user", ALICE,
              "--auth-password", "nope", "--from", ALICE, "--to", BOB)
    assert r.returncode == 28, r.stdout
