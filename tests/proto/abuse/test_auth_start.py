"""A guess is counted when it starts (issue: a new address opening with
100 parallel logins had 21-100 of them checked against a limit of 5):
however many sessions from one address log in at once, no more passwords
are checked than the per-address limit; the others get the throttled
reply without a check. Honest parallel logins from one address (an
office behind one NAT) all pass: they wait their turn rather than fail.
Counts come from the one log line of each attempt (result=fail: checked;
result=refused: not)."""
import re
import threading

import pytest

from lib import PASSWORD, WRAP_SCALE
from abuse_util import USER, Raw, assert_alive, start

N = 30
LIMIT = 5       # AUTH_FAIL_MAX_ADDR


def _plain(user, pw):
    import base64
    return base64.b64encode(f"\0{user}\0{pw}".encode())


def _parallel(fns):
    out = [None] * len(fns)
    ts = [threading.Thread(target=lambda i=i: out.__setitem__(i, fns[i]()))
          for i in range(len(fns))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(300 * WRAP_SCALE)
    return out


def _open(pr, proto):
    """A session ready for its login line; returns (raw, send_login,
    read_verdict)."""
    key = "submission" if proto == "smtp" else proto
    r = Raw(pr, key, timeout=300)
    g = r.line()
    assert g[:1] in (b"2", b"+", b"*"), g
    if proto == "smtp":
        r.send(b"EHLO guess.test\r\n")
        r.until(b"250 ")
    elif proto == "pop3":
        r.send(f"USER {USER}\r\n".encode())
        assert r.line().startswith(b"+OK")
    return r


def _login(proto, r, pw):
    """Sends one login with pw and returns its verdict line(s) joined."""
    try:
        if proto == "smtp":
            r.send(b"AUTH PLAIN " + _plain(USER, pw) + b"\r\n")
            return r.line()
        if proto == "pop3":
            r.send(f"PASS {pw}\r\n".encode())
            return r.line()
        r.send(f'g LOGIN "{USER}" "{pw}"\r\n'.encode())
        return b"\n".join(r.until(b"g "))
    except OSError:
        return b""


DAEMON = {"smtp": "smtpd", "pop3": "pop3d", "imap": "imapd"}
REFUSED = {"smtp": b"421", "pop3": b"Too many", "imap": b"* BYE Too many"}
FAILED = {"smtp": b"535", "pop3": b"-ERR [AUTH] Authentication failed",
          "imap": b"g NO"}


@pytest.mark.parametrize("proto", ["smtp", "pop3", "imap"])
def test_parallel_guesses_from_new_address(pr, proto):
    # Room for N sessions from one address, and for the failure delays.
    start(pr, proto, preauth_timeout="300s", max_connections_per_ip="100")
    if proto == "smtp":
        pr.add_user(USER)
    rs = [_open(pr, proto) for _ in range(N)]
    replies = _parallel([lambda r=r, i=i: _login(proto, r, f"par{i}")
                         for i, r in enumerate(rs)])
    log = pr.log(DAEMON[proto])
    checked = len(re.findall(r"login user=\S+ result=fail", log))
    refused = len(re.findall(r"login user=\S+ result=refused", log))
    assert 1 <= checked <= LIMIT, (checked, refused)
    assert checked + refused == N, (checked, refused)
    for x in replies:
        assert REFUSED[proto] in x or x.startswith(FAILED[proto]) or \
            (proto == "smtp" and x.startswith(b"421")), replies
    assert sum(REFUSED[proto] in x for x in replies) >= N - LIMIT, replies
    for r in rs:
        r.close()
    assert_alive(pr, proto)


@pytest.mark.parametrize("proto", ["smtp", "pop3", "imap"])
def test_parallel_honest_logins_all_pass(pr, proto):
    start(pr, proto, preauth_timeout="300s", max_connections_per_ip="100")
    if proto == "smtp":
        pr.add_user(USER)
    n = 3 * LIMIT
    rs = [_open(pr, proto) for _ in range(n)]
    replies = _parallel([lambda r=r: _login(proto, r, PASSWORD) for r in rs])
    ok = {"smtp": b"235", "pop3": b"+OK", "imap": b"g OK"}[proto]
    for x in replies:
        # POP3: one session holds the maildrop; the others' passwords
        # were right all the same.
        assert x.split(b"\n")[-1].startswith(ok) or \
            (proto == "pop3" and x.startswith(b"-ERR [IN-USE]")), replies
    log = pr.log(DAEMON[proto])
    assert len(re.findall(r"login user=\S+ result=(ok|tempfail .*reason=in-use)",
                          log)) == n
    assert not re.search(r"login user=\S+ result=(refused|fail)", log)
    for r in rs:
        r.close()
