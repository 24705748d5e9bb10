"""smtpd on the MX listener (smtp_listen): every command, delivery to local
users and aliases, refusal of unknown and non-local recipients, the
Received/Return-Path headers, and STARTTLS."""
import smtplib

import pytest

from lib.smtp import (ALICE, BOB, CAROL, TEAM, find, Raw, read_file, send_raw, setup_users,
                      token, token_message, wait_find)


@pytest.fixture(scope="module")
def smtp(srv):
    setup_users(srv)
    srv.start("smtpd")
    return srv


def test_greeting_and_ehlo(smtp):
    r = Raw.connect(smtp, "smtp")
    assert "mail.example.test" in r.greeting()[0]
    caps = r.ehlo("[192.0.2.10]")
    for cap in ("PIPELINING", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES",
                "CHUNKING", "STARTTLS", "SIZE 10485760"):
        assert cap in caps, caps
    assert "AUTH" not in caps          # never AUTH on the MX port
    r.expect("QUIT", 221)
    assert r.closed()


def test_helo_and_simple_commands(smtp):
    r = Raw.connect(smtp, "smtp")
    r.greeting()
    c, text = r.cmd("HELO client.test")
    assert c == 250 and "mail.example.test" in text[0]
    assert r.cmd("NOOP")[0] == 250
    assert r.cmd("RSET")[0] == 250
    c, text = r.cmd("HELP")
    assert c == 214
    c, text = r.cmd(f"VRFY {ALICE}")
    assert c == 252 and text[0].startswith("2.5.2")
    c, text = r.cmd(f"VRFY nobody@example.test")
    assert c == 252                     # discloses nothing
    c, text = r.cmd(f"EXPN {TEAM}")
    assert c == 502 and text[0].startswith("5.5.1")
    c, text = r.cmd("XYZZY")
    assert c == 500 and text[0].startswith("5.5.1")
    c, text = r.cmd("AUTH PLAIN AGFsaWNlAHBhc3M=")
    assert c == 502
    assert r.cmd("QUIT")[0] == 221


def test_sequence_errors(smtp):
    r = Raw.connect(smtp, "smtp")
    r.greeting()
    c, text = r.cmd(f"MAIL FROM:<{ALICE}>")
    assert c == 503 and text[0].startswith("5.5.1")
    r.ehlo()
    c, text = r.cmd(f"RCPT TO:<{BOB}>")
    assert (c, text[0][:5]) == (503, "5.5.1")
    c, text = r.cmd("DATA")
    assert (c, text[0][:5]) == (503, "5.5.1")
    r.expect(f"MAIL FROM:<{ALICE}>", 250)
    c, text = r.cmd(f"MAIL FROM:<{ALICE}>")
    assert (c, text[0][:5]) == (503, "5.5.1")
    c, text = r.cmd("DATA")
    assert (c, text[0][:5]) == (554, "5.5.1")
    r.expect("RSET", 250)
    c, text = r.cmd(f"RCPT TO:<{BOB}>")
    assert c == 503
    r.expect("QUIT", 221)


def test_smtplib_delivery(smtp):
    tok = token()
    with smtplib.SMTP("127.0.0.1", smtp.port("smtp"), timeout=10) as c:
        c.ehlo("client.test")
        refused = c.sendmail("sender@remote.test", [BOB],
                             token_message(tok, frm="sender@remote.test"))
        assert refused == {}
    files = find(smtp, BOB, tok)
    assert len(files) == 1
    data = read_file(files[0])
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    assert head.startswith("Return-Path: <sender@remote.test>\r\nReceived: from client.test ([127.0.0.1])")
    assert "by mail.example.test (Postroom) with ESMTP id " in head
    assert f"for <{BOB}>;" in head
    assert b"\n" not in data.replace(b"\r\n", b"")


def test_dot_unstuffing_and_null_sender(smtp):
    tok = token()
    r = Raw.connect(smtp, "smtp")
    r.greeting()
    r.ehlo()
    body = token_message(tok, body="..leading dot\r\n.\r\n...\r\nend\r\n")
    # smtplib would stuff; do it by hand: ".." -> ".", "." line inside -> "..".
    stuffed = body.replace("\r\n..leading", "\r\n...leading") \
        .replace("\r\n.\r\n...", "\r\n..\r\n....")
    r.expect("MAIL FROM:<>", 250)
    r.expect(f"RCPT TO:<{CAROL}>", 250)
    r.expect("DATA", 354)
    r.send(stuffed + ".\r\n")
    c, text = r.reply()
    assert c == 250 and text[0].startswith("2.0.0"), text
    data = read_file(find(smtp, CAROL, tok)[0])
    assert data.startswith(b"Return-Path: <>\r\n")
    assert data.endswith(body.encode())
    r.expect("QUIT", 221)


def test_recipient_forms(smtp):
    """Any letter case, user+tag, aliases; one copy per user."""
    tok = token()
    r = Raw.connect(smtp, "smtp")
    r.greeting()
    r.ehlo()
    send_raw(r, "x@remote.test",
             ["Alice@EXAMPLE.test", "bob+lists@example.test", TEAM],
             token_message(tok))
    assert len(find(smtp, ALICE, tok)) == 1
    assert len(find(smtp, BOB, tok)) == 1
    assert find(smtp, CAROL, tok) == []
    r.expect("QUIT", 221)


def test_unknown_and_nonlocal_recipients(smtp):
    r = Raw.connect(smtp, "smtp")
    r.greeting()
    r.ehlo()
    r.expect("MAIL FROM:<x@remote.test>", 250)
    c, text = r.cmd("RCPT TO:<nobody@example.test>")
    assert (c, text[0][:5]) == (550, "5.1.1")
    c, text = r.cmd("RCPT TO:<someone@elsewhere.test>")
    assert (c, text[0][:5]) == (554, "5.7.1")
    c, text = r.cmd("RCPT TO:<bad address@example.test>")
    assert c == 501
    c, text = r.cmd("DATA")
    assert c == 554                     # no valid recipients
    r.expect("QUIT", 221)


def test_starttls_on_mx(smtp):
    tok = token()
    r = Raw.connect(smtp, "smtp")
    r.greeting()
    r.ehlo()
    r.starttls()
    c, text = r.cmd(f"MAIL FROM:<{ALICE}>")
    assert c == 503                     # EHLO state forgotten after TLS
    caps = r.ehlo()
    assert "STARTTLS" not in caps and "AUTH" not in caps
    c, text = r.cmd("STARTTLS")
    assert c == 503
    send_raw(r, "x@remote.test", [BOB], token_message(tok))
    head = read_file(find(smtp, BOB, tok)[0]).split(b"\r\n\r\n")[0].decode()
    assert " with ESMTPS id " in head
    assert "(using TLSv1." in head and "with cipher" in head
    r.expect("QUIT", 221)


def test_helo_session_uses_smtp_protocol(smtp):
    tok = token()
    r = Raw.connect(smtp, "smtp")
    r.greeting()
    r.expect("HELO old.client", 250)
    send_raw(r, "x@remote.test", [BOB], token_message(tok))
    head = read_file(find(smtp, BOB, tok)[0]).split(b"\r\n\r\n")[0].decode()
    assert " with SMTP id " in head
    r.expect("QUIT", 221)


def test_several_messages_without_rset(smtp):
    """Thunderbird reuses the connection: MAIL right after the 250."""
    toks = [token() for _ in range(3)]
    r = Raw.connect(smtp, "smtp")
    r.greeting()
    r.ehlo()
    for t in toks:
        send_raw(r, "x@remote.test", [CAROL], token_message(t))
    for t in toks:
        assert len(find(smtp, CAROL, t)) == 1
    r.expect("QUIT", 221)


def test_smtputf8(smtp):
    tok = token()
    r = Raw.connect(smtp, "smtp")
    r.greeting()
    r.ehlo()
    c, text = r.cmd("MAIL FROM:<j\u00f6rg@b\u00fccher.test>")
    assert (c, text[0][:5]) == (553, "5.6.7")
    r.expect("MAIL FROM:<j\u00f6rg@b\u00fccher.test> SMTPUTF8 BODY=8BITMIME", 250)
    c, text = r.cmd("RCPT TO:<\u00fcser@example.test>")
    assert c == 550                     # valid syntax, unknown user
    r.expect(f"RCPT TO:<{BOB}>", 250)
    r.expect("DATA", 354)
    r.send(token_message(tok, body="Gr\u00fc\u00dfe\r\n").encode() + b".\r\n")
    assert r.reply()[0] == 250
    data = read_file(find(smtp, BOB, tok)[0])
    assert "Return-Path: <j\u00f6rg@b\u00fccher.test>".encode() in data
    assert b" with UTF8SMTP id " in data
    assert "Gr\u00fc\u00dfe".encode() in data
    r.expect("QUIT", 221)


def test_mail_parameters(smtp):
    r = Raw.connect(smtp, "smtp")
    r.greeting()
    r.ehlo()
    c, text = r.cmd("MAIL FROM:<x@remote.test> RET=FULL")
    assert (c, text[0][:5]) == (555, "5.5.4")
    c, text = r.cmd("MAIL FROM:<x@remote.test> BODY=BINARYMIME")
    assert c == 555
    r.expect("MAIL FROM: <x@remote.test> SIZE=1000 BODY=7BIT AUTH=<>", 250)
    c, text = r.cmd(f"RCPT TO:<{BOB}> NOTIFY=NEVER")
    assert c == 555
    r.expect("RSET", 250)
    r.expect("QUIT", 221)


def test_postmaster_without_domain(smtp):
    """RCPT TO:<Postmaster> (no domain) reaches postmaster of a local
    domain (RFC 5321 4.5.1)."""
    tok = token()
    r = Raw.connect(smtp, "smtp")
    r.greeting()
    r.ehlo()
    r.expect("MAIL FROM:<x@remote.test>", 250)
    c, text = r.cmd("RCPT TO:<Postmaster>")
    assert (c, text[0][:5]) == (250, "2.1.5")     # none configured: the first user
    r.expect("RSET", 250)
    smtp.mailctl("alias", "add", "postmaster@example.test", CAROL)
    send_raw(r, "x@remote.test", ["Postmaster"], token_message(tok))
    assert len(find(smtp, CAROL, tok)) == 1
    r.expect("QUIT", 221)
