"""max_header_size (default 100K): a message whose header section (up to
the first empty line, or the whole message without one) is larger gets
552 5.3.4 at the end of DATA or of the BDAT chunk that passes the limit,
and nothing of it is delivered or queued. The default is used, so these
also pin it at 102400 bytes."""
import json
import smtplib

import pytest

from lib import WRAP_SCALE, smtp_login
from lib.smtp import ALICE, BOB, Raw, find, setup_users, token

LIMIT = 102400
REMOTE = "someone@remote.test"


@pytest.fixture(scope="module")
def smtp(srv):
    setup_users(srv)
    srv.start("smtpd")
    return srv


def head(tok):
    return (f"From: <{ALICE}>\r\nTo: <{BOB}>\r\nSubject: test {tok}\r\n"
            f"Message-ID: <{tok}@example.test>\r\n").encode()


def many_lines(tok, size):
    """A header section of exactly size bytes, lines of under 100."""
    h = head(tok)
    i = 0
    while size - len(h) > 200:
        h += b"X-Fill-%06d: %s\r\n" % (i, b"y" * 60)
        i += 1
    pad = size - len(h) - len(b"X-Last: \r\n")
    return h + b"X-Last: " + b"z" * pad + b"\r\n"


def folded(tok, size):
    """One header field folded over many lines, size bytes in all."""
    h = head(tok) + b"X-Folded: start\r\n"
    while size - len(h) > 200:
        h += b"\t" + b"w" * 90 + b"\r\n"
    return h + b"\t" + b"v" * (size - len(h) - 3) + b"\r\n"


def mx_send(inst, data):
    s = smtplib.SMTP("127.0.0.1", inst.port("smtp"), timeout=60 * WRAP_SCALE)
    try:
        s.ehlo("client.test")
        s.sendmail("x@remote.test", [BOB], data)
    finally:
        s.quit()


def assert_refused(exc):
    assert exc.value.smtp_code == 552, exc.value
    assert exc.value.smtp_error.startswith(b"5.3.4 Message header too large")


def test_many_header_lines_refused(smtp):
    tok = token()
    with pytest.raises(smtplib.SMTPDataError) as exc:
        mx_send(smtp, many_lines(tok, 200 * 1024) + b"\r\nbody\r\n")
    assert_refused(exc)
    assert find(smtp, BOB, tok) == []


def test_single_folded_header_refused(smtp):
    tok = token()
    with pytest.raises(smtplib.SMTPDataError) as exc:
        mx_send(smtp, folded(tok, 150 * 1024) + b"\r\nbody\r\n")
    assert_refused(exc)
    assert find(smtp, BOB, tok) == []


def test_no_empty_line_counts_whole_message(smtp):
    tok = token()
    with pytest.raises(smtplib.SMTPDataError) as exc:
        mx_send(smtp, many_lines(tok, LIMIT + 1))
    assert_refused(exc)
    assert find(smtp, BOB, tok) == []


@pytest.mark.parametrize("build", [many_lines, folded])
def test_exactly_at_limit_accepted(smtp, build):
    tok = token()
    h = build(tok, LIMIT)
    assert len(h) == LIMIT
    mx_send(smtp, h + b"\r\n" + b"body line\r\n" * 20000)
    assert len(find(smtp, BOB, tok)) == 1


def test_one_over_limit_refused(smtp):
    tok = token()
    with pytest.raises(smtplib.SMTPDataError) as exc:
        mx_send(smtp, many_lines(tok, LIMIT + 1) + b"\r\nbody\r\n")
    assert_refused(exc)


def test_submission_nothing_queued(smtp):
    tok = token()
    s = smtp_login(smtp, ALICE)
    try:
        with pytest.raises(smtplib.SMTPDataError) as exc:
            s.sendmail(ALICE, [BOB, REMOTE],
                       many_lines(tok, 200 * 1024) + b"\r\nbody\r\n")
        assert_refused(exc)
        # The session goes on: a normal message after it is accepted.
        s.sendmail(ALICE, [BOB], head(tok) + b"\r\nsmall\r\n")
    finally:
        s.quit()
    assert len(find(smtp, BOB, tok)) == 1
    assert json.loads(smtp.mailctl("queue", "list", "--json").stdout) == []


def test_bdat_refused_at_the_chunk(smtp):
    tok = token()
    r = Raw.connect(smtp, "smtp")
    r.greeting()
    assert "CHUNKING" in r.ehlo()
    r.expect("MAIL FROM:<x@remote.test>", 250)
    r.expect(f"RCPT TO:<{BOB}>", 250)
    part = many_lines(tok, 200 * 1024)
    r.send(b"BDAT %d\r\n" % len(part) + part)
    c, text = r.reply()
    assert (c, text[0]) == (552, "5.3.4 Message header too large"), text
    # The rest of the message is refused as a BDAT without a transaction.
    r.send(b"BDAT 8 LAST\r\n\r\nbody\r\n")
    assert r.reply()[0] == 503
    r.expect("NOOP", 250)
    r.expect("QUIT", 221)
    assert find(smtp, BOB, tok) == []
