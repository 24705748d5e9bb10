"""The same command set on all three listeners: MX (after STARTTLS),
submission (after STARTTLS and AUTH) and SMTPS (implicit TLS and AUTH)."""
import pytest

from lib.smtp import (ALICE, BOB, find, Raw, read_file, setup_users, submission_session,
                      token, token_message)


@pytest.fixture(scope="module")
def smtp(srv):
    setup_users(srv)
    srv.start("smtpd")
    return srv


def session(inst, key):
    if key == "smtp":
        r = Raw.connect(inst, "smtp")
        r.greeting()
        r.ehlo()
        r.starttls()
        r.ehlo()
        return r, "x@remote.test", "ESMTPS"
    return submission_session(inst, key), ALICE, "ESMTPSA"


@pytest.mark.parametrize("key", ["smtp", "submission", "smtps"])
def test_command_set(smtp, key):
    r, frm, proto = session(smtp, key)
    assert r.cmd("NOOP")[0] == 250
    assert r.cmd("HELP")[0] == 214
    assert r.cmd(f"VRFY {BOB}")[0] == 252
    assert r.cmd(f"EXPN {BOB}")[0] == 502
    assert r.cmd("RSET")[0] == 250
    c, text = r.cmd(f"MAIL FROM:<{frm}> SIZE=99999999999")
    assert (c, text[0][:5]) == (552, "5.3.4")
    # DATA with dot-stuffing, pipelined envelope
    tok = token()
    body = token_message(tok, frm=frm, body=".hidden dot\r\n")
    r.send(f"MAIL FROM:<{frm}> BODY=8BITMIME\r\nRCPT TO:<{BOB}>\r\nDATA\r\n")
    assert [r.reply()[0] for _ in range(3)] == [250, 250, 354]
    r.send(body.replace("\r\n.hidden", "\r\n..hidden") + ".\r\n")
    assert r.reply()[0] == 250
    data = read_file(find(smtp, BOB, tok)[0])
    assert data.endswith(body.encode())
    assert f" with {proto} id ".encode() in data
    # BDAT in two chunks
    tok = token()
    body = token_message(tok, frm=frm).encode()
    r.expect(f"MAIL FROM:<{frm}>", 250)
    r.expect(f"RCPT TO:<{BOB}>", 250)
    r.send(b"BDAT 10\r\n" + body[:10])
    assert r.reply()[0] == 250
    r.send(b"BDAT %d LAST\r\n" % (len(body) - 10) + body[10:])
    assert r.reply()[0] == 250
    assert read_file(find(smtp, BOB, tok)[0]).endswith(body)
    r.expect("QUIT", 221)
