"""smtpd's ESMTP extensions over raw sockets: PIPELINING (RFC 2920), SIZE
(RFC 1870), CHUNKING/BDAT (RFC 3030), ENHANCEDSTATUSCODES on every reply,
and the same on the TLS listeners."""
import re

import pytest

from lib.smtp import (ALICE, BOB, CAROL, find, Raw, read_file, setup_users,
                      submission_session, token, token_message)


@pytest.fixture(scope="module")
def smtp(srv):
    srv.write_config(max_message_size="64K")
    setup_users(srv)
    srv.start("smtpd")
    return srv


def replies(r, n):
    return [r.reply() for _ in range(n)]


def test_pipelined_transaction(smtp):
    tok = token()
    r = Raw.connect(smtp, "smtp")
    r.greeting()
    r.ehlo()
    # One write: the whole envelope group, then the content after 354.
    r.send(f"MAIL FROM:<x@remote.test>\r\nRCPT TO:<{BOB}>\r\n"
           f"RCPT TO:<nobody@example.test>\r\nRCPT TO:<{CAROL}>\r\nDATA\r\n")
    got = replies(r, 5)
    assert [c for c, _ in got] == [250, 250, 550, 250, 354]
    r.send(token_message(tok) + ".\r\nNOOP\r\nMAIL FROM:<y@remote.test>\r\n"
           f"RCPT TO:<{ALICE}>\r\nRSET\r\nQUIT\r\n")
    got = replies(r, 6)
    assert [c for c, _ in got] == [250, 250, 250, 250, 250, 221]
    assert len(find(smtp, BOB, tok)) == 1 and len(find(smtp, CAROL, tok)) == 1
    assert find(smtp, ALICE, tok) == []
    assert r.closed()


def test_pipelined_many_messages_one_write(smtp):
    toks = [token() for _ in range(5)]
    r = Raw.connect(smtp, "smtp")
    r.greeting()
    r.ehlo()
    batch = ""
    for t in toks:
        batch += (f"MAIL FROM:<x@remote.test>\r\nRCPT TO:<{CAROL}>\r\n"
                  f"BDAT {len(token_message(t))} LAST\r\n{token_message(t)}")
    r.send(batch + "QUIT\r\n")
    got = replies(r, 3 * len(toks) + 1)
    assert [c for c, _ in got] == [250, 250, 250] * len(toks) + [221]
    for t in toks:
        assert len(find(smtp, CAROL, t)) == 1


def test_enhanced_status_codes_everywhere(smtp):
    r = Raw.connect(smtp, "smtp")
    r.greeting()
    r.ehlo()
    for line in ("NOOP", "RSET", "VRFY x", "EXPN x", "FOO", "MAIL FROM:<",
                 "RCPT TO:<x@y>", "DATA", "BDAT x", "HELP"):
        c, text = r.cmd(line)
        assert re.match(r"[245]\.\d{1,3}\.\d{1,3} ", text[-1]), (line, text)
    r.expect("QUIT", 221)


def test_size_declared_too_big(smtp):
    r = Raw.connect(smtp, "smtp")
    r.greeting()
    caps = r.ehlo()
    assert "SIZE 65536" in caps
    c, text = r.cmd("MAIL FROM:<x@remote.test> SIZE=65537")
    assert (c, text[0][:5]) == (552, "5.3.4")
    r.expect("MAIL FROM:<x@remote.test> SIZE=65536", 250)
    r.expect("QUIT", 221)


def test_size_actual_too_big_data(smtp):
    tok = token()
    r = Raw.connect(smtp, "smtp")
    r.greeting()
    r.ehlo()
    r.expect("MAIL FROM:<x@remote.test> SIZE=100", 250)
    r.expect(f"RCPT TO:<{BOB}>", 250)
    r.expect("DATA", 354)
    r.send(token_message(tok, body=("x" * 70 + "\r\n") * 1000) + ".\r\n")
    c, text = r.reply()
    assert (c, text[0][:5]) == (552, "5.3.4")
    assert find(smtp, BOB, tok) == []
    r.expect("NOOP", 250)               # the session goes on
    r.expect("QUIT", 221)


def test_size_actual_too_big_bdat(smtp):
    tok = token()
    r = Raw.connect(smtp, "smtp")
    r.greeting()
    r.ehlo()
    r.expect("MAIL FROM:<x@remote.test>", 250)
    r.expect(f"RCPT TO:<{BOB}>", 250)
    chunk = token_message(tok, body=("y" * 70 + "\r\n") * 500)
    r.send(f"BDAT {len(chunk)}\r\n{chunk}")
    assert r.reply()[0] == 250
    r.send(f"BDAT {len(chunk)}\r\n{chunk}")
    c, text = r.reply()
    assert (c, text[0][:5]) == (552, "5.3.4")
    r.send(f"BDAT 5 LAST\r\nhello")      # dropped, wrong state now
    assert r.reply()[0] == 503
    assert find(smtp, BOB, tok) == []
    r.expect("QUIT", 221)


def test_bdat_chunks(smtp):
    tok = token()
    msg = token_message(tok, body="line one\r\n.dot stays\r\nlast\r\n").encode()
    r = Raw.connect(smtp, "smtp")
    r.greeting()
    r.ehlo()
    r.expect("MAIL FROM:<x@remote.test> BODY=8BITMIME", 250)
    r.expect(f"RCPT TO:<{BOB}>", 250)
    a, b = msg[:37], msg[37:]
    r.send(b"BDAT %d\r\n" % len(a) + a)
    c, text = r.reply()
    assert c == 250 and text[0].startswith("2.0.0")
    c, _ = r.cmd("DATA")
    assert c == 503                     # no DATA within BDAT
    c, _ = r.cmd(f"MAIL FROM:<x@remote.test>")
    assert c == 503
    r.send(b"BDAT %d\r\n" % len(b) + b)
    assert r.reply()[0] == 250
    r.expect("BDAT 0 LAST", 250)
    data = read_file(find(smtp, BOB, tok)[0])
    assert data.endswith(msg)           # no unstuffing for BDAT
    r.expect("QUIT", 221)


def test_bdat_without_transaction_is_skipped(smtp):
    r = Raw.connect(smtp, "smtp")
    r.greeting()
    r.ehlo()
    # The chunk's bytes look like commands; they must not run.
    r.send("BDAT 6 LAST\r\nQUIT\r\n")
    c, text = r.reply()
    assert (c, text[0][:5]) == (503, "5.5.1")
    r.expect("NOOP", 250)
    r.expect("MAIL FROM:<x@remote.test>", 250)
    r.send("RCPT TO:<nobody@example.test>\r\nBDAT 6 LAST\r\nQUIT\r\n")
    assert r.reply()[0] == 550
    assert r.reply()[0] == 554
    r.expect("RSET", 250)
    r.expect("QUIT", 221)


def test_bdat_over_tls_with_auth(smtp):
    tok = token()
    r = submission_session(smtp, "smtps")
    msg = token_message(tok)
    r.send(f"MAIL FROM:<{ALICE}>\r\nRCPT TO:<{BOB}>\r\n"
           f"BDAT {len(msg)} LAST\r\n{msg}")
    assert [c for c, _ in replies(r, 3)] == [250, 250, 250]
    assert len(find(smtp, BOB, tok)) == 1
    r.expect("QUIT", 221)


def test_pipelined_submission_starttls(smtp):
    tok = token()
    r = submission_session(smtp, "submission")
    msg = token_message(tok)
    r.send(f"MAIL FROM:<{ALICE}>\r\nRCPT TO:<{CAROL}>\r\nDATA\r\n")
    assert [c for c, _ in replies(r, 3)] == [250, 250, 354]
    r.send(msg + ".\r\nQUIT\r\n")
    assert [c for c, _ in replies(r, 2)] == [250, 221]
    assert len(find(smtp, CAROL, tok)) == 1
