"""smtpd's limits and bad input: line length, recipients, errors, idle
timeouts, connections per address, failed AUTH, quota, STARTTLS
injection, NUL/bare LF/overlong lines/garbage, and clients that vanish in
the middle of DATA. The sanitizer build must stay clean throughout (the
harness checks its log at shutdown)."""
import socket
import time

import pytest

from lib import WRAP_SCALE
from lib.smtp import (ALICE, BOB, CAROL, find, plain_ir, Raw, send_raw, setup_users,
                      submission_session, token, token_message, wait_find)

DAVE = "dave@example.test"


@pytest.fixture(scope="module")
def smtp(srv):
    srv.write_config(max_recipients="3")
    setup_users(srv)
    srv.add_user(DAVE, quota="1K")
    srv.start("smtpd")
    return srv


def mx(inst):
    r = Raw.connect(inst, "smtp")
    r.greeting()
    r.ehlo()
    return r


def test_overlong_command_line(smtp):
    r = mx(smtp)
    c, text = r.cmd("NOOP " + "x" * 5000)
    assert (c, text[0][:5]) == (500, "5.5.2")
    r.expect("NOOP", 250)               # the session goes on
    r.expect("QUIT", 221)


def test_too_many_recipients(smtp):
    r = mx(smtp)
    r.expect("MAIL FROM:<x@remote.test>", 250)
    for u in (ALICE, BOB, CAROL):
        r.expect(f"RCPT TO:<{u}>", 250)
    c, text = r.cmd("RCPT TO:<bob+again@example.test>")
    assert (c, text[0][:5]) == (452, "4.5.3")
    r.expect("RSET", 250)
    r.expect("QUIT", 221)


def test_error_limit_closes(smtp):
    r = mx(smtp)
    # Exactly as many errors as the limit, in one write, so the
    # server has read everything when it closes (no RST).
    r.send("RCPT TO:<alice@example.test>\r\n" * 20)
    codes = [r.reply()[0] for _ in range(21)]
    assert codes == [503] * 20 + [421], codes
    assert r.closed()


def test_unrecognized_limit_closes(smtp):
    """A peer not speaking SMTP (an HTTP request through a proxy) is cut
    after 10 unrecognized commands, before the general error limit."""
    r = mx(smtp)
    r.send("POST / HTTP/1.1\r\nHost: x\r\n" + "X-Junk: y\r\n" * 8)
    codes = [r.reply()[0] for _ in range(11)]
    assert codes == [500] * 10 + [421], codes
    assert r.closed()


def test_nul_and_garbage_commands(smtp):
    r = mx(smtp)
    c, text = r.cmd("NO\0OP")
    assert (c, text[0][:5]) == (500, "5.5.2")
    r.send(b"\xff\xfe\x00\x01\x02garbage\r\n")
    assert r.reply()[0] == 500
    c, _ = r.cmd("")
    assert c == 500
    r.expect("NOOP", 250)
    r.expect("QUIT", 221)


@pytest.mark.parametrize("body,what", [
    ("bare\nlf\r\n", "bare"),
    ("bare\rcr\r\n", "bare"),
    ("a\0b\r\n", "NUL"),
    ("x" * 1200 + "\r\n", "longer than 998"),
])
def test_bad_content_refused(smtp, body, what):
    tok = token()
    r = mx(smtp)
    r.expect("MAIL FROM:<x@remote.test>", 250)
    r.expect(f"RCPT TO:<{BOB}>", 250)
    r.expect("DATA", 354)
    r.send(token_message(tok, body=body) + ".\r\n")
    c, text = r.reply()
    assert (c, text[0][:5]) == (554, "5.6.0") and what in text[0], text
    assert find(smtp, BOB, tok) == []
    r.expect("NOOP", 250)
    r.expect("QUIT", 221)


def test_lf_dot_lf_does_not_end_data(smtp):
    """<LF>.<LF> is not the end of DATA: no smuggling."""
    tok = token()
    r = mx(smtp)
    r.expect("MAIL FROM:<x@remote.test>", 250)
    r.expect(f"RCPT TO:<{BOB}>", 250)
    r.expect("DATA", 354)
    r.send(token_message(tok, body="x\r\n") + "\n.\nMAIL FROM:<evil@remote.test>\n")
    r.send("\r\n.\r\n")
    c, text = r.reply()
    assert c == 554
    assert find(smtp, BOB, tok) == []
    r.expect("QUIT", 221)


def test_vanishing_client_mid_data(smtp):
    tok = token()
    for cut in (10, 400):
        r = mx(smtp)
        r.expect("MAIL FROM:<x@remote.test>", 250)
        r.expect(f"RCPT TO:<{BOB}>", 250)
        r.expect("DATA", 354)
        r.send(token_message(tok, body="z" * 500 + "\r\n")[:cut])
        r.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                       b"\x01\x00\x00\x00\x00\x00\x00\x00")
        r.close()                       # RST
    r = mx(smtp)                        # still serving
    r.expect("QUIT", 221)
    assert find(smtp, BOB, tok) == []
    # nothing left behind in the store's tmp directories either
    import os
    for dp, _, fns in os.walk(smtp.data_dir):
        if os.path.basename(dp) == "tmp":
            for f in fns:
                with open(os.path.join(dp, f), "rb") as fh:
                    assert tok.encode() not in fh.read()


def test_quota_checked_at_rcpt(smtp):
    tok = token()
    r = mx(smtp)
    c, text = r.cmd(f"MAIL FROM:<x@remote.test> SIZE=5000")
    assert c == 250
    c, text = r.cmd(f"RCPT TO:<{DAVE}>")
    assert (c, text[0][:5]) == (452, "4.2.2")
    r.expect("RSET", 250)
    # a first message that fills the mailbox is still taken...
    send_raw(r, "x@remote.test", [DAVE], token_message(tok, body="q" * 900 + "\r\n"))
    assert len(find(smtp, DAVE, tok)) == 1
    # ...and then the next RCPT is refused, nothing accepted and bounced
    r.expect("MAIL FROM:<x@remote.test>", 250)
    c, text = r.cmd(f"RCPT TO:<{DAVE}>")
    assert (c, text[0][:5]) == (452, "4.2.2")
    r.expect("QUIT", 221)


def test_starttls_discards_pipelined_plaintext(smtp):
    r = Raw.connect(smtp, "smtp")
    r.greeting()
    r.ehlo()
    r.send("STARTTLS\r\nMAIL FROM:<injected@remote.test>\r\n")
    c, _ = r.reply()
    assert c == 220
    from lib import client_tls_context
    r.s = client_tls_context().wrap_socket(r.s,
                                           server_hostname="mail.example.test")
    r.buf = b""
    # Had the injected MAIL run, this would be "503 nested MAIL" or a
    # second reply; the session must be back at the start instead.
    c, text = r.cmd("MAIL FROM:<x@remote.test>")
    assert c == 503 and "EHLO" in text[0]
    r.ehlo()
    r.expect("MAIL FROM:<x@remote.test>", 250)
    r.expect("QUIT", 221)


def test_data_before_starttls_completes_on_submission(smtp):
    r = Raw.connect(smtp, "submission")
    r.greeting()
    r.ehlo()
    r.send("STARTTLS\r\nAUTH PLAIN " + plain_ir(ALICE) + "\r\n")
    assert r.reply()[0] == 220
    from lib import client_tls_context
    r.s = client_tls_context().wrap_socket(r.s,
                                           server_hostname="mail.example.test")
    r.buf = b""
    r.ehlo()
    c, _ = r.cmd(f"MAIL FROM:<{ALICE}>")
    assert c == 530                     # the injected AUTH never counted
    r.expect("QUIT", 221)


def test_starttls_forgets_plaintext_auth(pr):
    # RFC 3207 4.2: an AUTH done in clear text (allow_plaintext_auth) is
    # knowledge from before TLS and does not carry over.
    pr.write_config(allow_plaintext_auth="yes")
    setup_users(pr)
    pr.start("smtpd")
    r = Raw.connect(pr, "submission")
    r.greeting()
    r.ehlo()
    r.expect("AUTH PLAIN " + plain_ir(ALICE), 235)
    r.expect("STARTTLS", 220)
    from lib import client_tls_context
    r.s = client_tls_context().wrap_socket(r.s,
                                           server_hostname="mail.example.test")
    r.buf = b""
    r.ehlo()
    c, _ = r.cmd(f"MAIL FROM:<{ALICE}>")
    assert c == 530
    r.expect("AUTH PLAIN " + plain_ir(ALICE), 235)
    r.expect(f"MAIL FROM:<{ALICE}>", 250)
    r.expect("QUIT", 221)


def test_idle_timeout(pr):
    pr.write_config(preauth_timeout="1s", smtp_timeout="2s")
    setup_users(pr)
    pr.start("smtpd")
    r = Raw.connect(pr, "smtp", timeout=30)
    r.greeting()
    c, text = r.reply()                 # waits for the server's goodbye
    assert (c, text[0][:5]) == (421, "4.4.2")
    assert r.closed()
    # The session timeout, with room for each command's reply on a loaded
    # machine.
    pr.stop("smtpd")
    pr.write_config(preauth_timeout="5s", smtp_timeout="5s")
    pr.start("smtpd")
    r = Raw.connect(pr, "smtp", timeout=30)
    r.greeting()
    r.ehlo()
    r.expect("MAIL FROM:<x@remote.test>", 250)
    c, text = r.reply()
    assert c == 421
    assert r.closed()


@pytest.mark.parametrize("key", ["max_connections_per_ip", "max_connections"])
def test_connection_limits(pr, key):
    pr.write_config(**{key: "3"})
    setup_users(pr)
    pr.start("smtpd")
    held = []
    deadline = time.time() + 60 * WRAP_SCALE
    while len(held) < 3:
        # The harness's own port probes may not be reaped yet: retry.
        r = Raw.connect(pr, "smtp")
        c, _ = r.reply()
        if c == 220:
            held.append(r)
        else:
            r.close()
            assert time.time() < deadline
            time.sleep(0.1)
    r = Raw.connect(pr, "smtp")
    c, text = r.reply()
    assert (c, text[0][:5]) == (421, "4.7.0")
    assert r.closed()
    held.pop().expect("QUIT", 221)
    time.sleep(0.2)
    r = Raw.connect(pr, "smtp")         # a slot is free again
    r.greeting()
    r.expect("QUIT", 221)
    for h in held:
        h.close()


def test_failed_auth_delay_then_421(pr):
    setup_users(pr)
    pr.start("smtpd")
    r = Raw.connect(pr, "smtps", tls=True, timeout=60)
    r.greeting()
    r.ehlo()
    codes = []
    for _ in range(8):
        try:
            c, _ = r.cmd("AUTH PLAIN " + plain_ir(ALICE, "bad"))
        except (EOFError, ConnectionResetError):
            break
        codes.append(c)
        if c == 421:
            break
    assert codes[:4] == [535] * 4 and codes[-1] == 421, codes
    assert r.closed()
    # the address stays blocked for AUTH, also on a new connection
    r = Raw.connect(pr, "smtps", tls=True, timeout=60)
    r.greeting()
    r.ehlo()
    c, _ = r.cmd("AUTH PLAIN " + plain_ir(ALICE))
    assert c == 421


@pytest.mark.parametrize("key", ["smtp", "submission", "smtps"])
def test_random_garbage(smtp, key):
    """Random bytes (also as a TLS ClientHello on smtps): clear replies or
    a clean close, never a crash; the daemon keeps serving."""
    import random
    rnd = random.Random(key)
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", smtp.port(key)), timeout=10)
        try:
            s.sendall(bytes(rnd.getrandbits(8) for _ in range(20000)))
            s.settimeout(5)
            while s.recv(65536):
                pass
        except (socket.timeout, ConnectionResetError, BrokenPipeError):
            pass
        finally:
            s.close()
    r = mx(smtp)
    r.expect("QUIT", 221)
