"""Connection-table fairness (pop3d, imapd): one address that fills the whole
table with idle connections and stalled TLS handshakes must not lock out
everyone else. A newcomer from another address makes room by closing the
longest idle connection that is not logged in (of an address holding more
than the newcomer's); logged-in sessions are never closed; an address never
takes a slot from itself. Every wait is for an event (a line, a close, a log
line), with generous upper bounds."""
import re
import socket

import pytest

from lib import PASSWORD, WRAP_SCALE
from lib.instance import LISTENERS
from abuse_util import PROTOS, Raw, assert_alive, start, wait_for

TABLE = 6


def _settled(pr, daemon):
    """The harness's port probes (one per listener) have been accepted and
    closed again."""
    log = pr.log(daemon)
    n = log.count(" connect peer=")
    return n >= len(LISTENERS[daemon]) and n == log.count(" disconnect reason=")


def _login(pr, proto, raw, user):
    """Logs raw in (greeting read) as user; a POP3 maildrop takes one
    session at a time, so every session has its own user."""
    if proto == "pop3":
        raw.send(f"USER {user}\r\nPASS {PASSWORD}\r\n".encode())
        assert raw.line().startswith(b"+OK")
        ln = raw.line()
        assert ln.startswith(b"+OK"), ln
    else:
        raw.send(f'l LOGIN "{user}" "{PASSWORD}"\r\n'.encode())
        ln = raw.until(b"l ")[-1]
        assert ln.startswith(b"l OK"), ln


def _users(pr, n):
    return [pr.add_user(f"fair{i}@example.test") for i in range(n)]


def _tls_connects(pr, daemon):
    return len(re.findall(r" connect peer=127\.0\.0\.1 tls=implicit$",
                          pr.log(daemon), re.M))


def _closed(sock):
    """Waits for the server's close (EOF or reset); False on the safety
    timeout."""
    sock.settimeout(60 * WRAP_SCALE)
    try:
        while sock.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def _refused(pr, proto, source):
    r = Raw(pr, PROTOS[proto]["key"], source=source)
    try:
        g = r.line()
        return not g.startswith(PROTOS[proto]["greet"]) and \
            _closed(r.s), g
    finally:
        r.close()


@pytest.mark.parametrize("proto", ["pop3", "imap"])
def test_full_table_keeps_room_for_others(pr, proto):
    d = PROTOS[proto]
    daemon = d["daemon"]
    # Long pre-auth and handshake deadlines: only eviction can free a slot.
    start(pr, proto, max_connections=str(TABLE),
          max_unauth_connections_per_ip=str(TABLE),
          preauth_timeout="10m", tls_handshake_timeout="10m")
    assert wait_for(lambda: _settled(pr, daemon), 60)
    users = _users(pr, 6)

    # 127.0.0.1 fills the table: two logged-in sessions, two idle
    # connections, two stalled TLS handshakes (oldest first).
    sessions, idle = [], []
    for i in range(2):
        r = Raw(pr, d["key"])
        assert r.line().startswith(d["greet"])
        _login(pr, proto, r, users[i])
        sessions.append(r)
    for _ in range(2):
        r = Raw(pr, d["key"])
        assert r.line().startswith(d["greet"])
        idle.append(r)
    base = _tls_connects(pr, daemon)
    stalled = [socket.create_connection(("127.0.0.1", pr.port(d["tls_key"])),
                                        timeout=60 * WRAP_SCALE)
               for _ in range(2)]
    assert wait_for(lambda: _tls_connects(pr, daemon) >= base + 2, 60)
    # Full, and the filler cannot make room at its own expense.
    refused, g = _refused(pr, proto, "127.0.0.1")
    assert refused, g

    # Four newcomers from other addresses are greeted and log in; each
    # closes one of the filler's idle connections or handshakes.
    newcomers = []
    for i in range(4):
        r = Raw(pr, d["key"], source=f"127.0.0.{2 + i}")
        g = r.line()
        assert g.startswith(d["greet"]), (i, g)
        _login(pr, proto, r, users[2 + i])
        newcomers.append(r)
    for r in idle:
        assert _closed(r.s), "an idle connection was not closed"
    for s in stalled:
        assert _closed(s), "a stalled handshake was not closed"
    assert wait_for(lambda: len(re.findall(r" evict peer=127\.0\.0\.1 ",
                                           pr.log(daemon))) == 4, 60)

    # The logged-in sessions, the filler's and the newcomers', all survive.
    for r in sessions + newcomers:
        r.send(d["noop"] if proto == "imap" else b"NOOP\r\n")
        ln = r.until(b"a " if proto == "imap" else b"+OK")[-1]
        assert ln.startswith(d["ok"]), ln

    # Only logged-in sessions are left: a further newcomer is refused.
    refused, g = _refused(pr, proto, "127.0.0.9")
    assert refused, g
    for r in sessions + newcomers + idle:
        r.close()
    for s in stalled:
        s.close()
    assert_alive(pr, proto)


@pytest.mark.parametrize("proto", ["pop3", "imap"])
def test_unauth_limit_per_address(pr, proto):
    """Connections that have not logged in are capped per address below
    max_connections_per_ip; a login frees its slot."""
    d = PROTOS[proto]
    daemon = d["daemon"]
    start(pr, proto, max_unauth_connections_per_ip="3",
          max_connections_per_ip="10", preauth_timeout="10m")
    assert wait_for(lambda: _settled(pr, daemon), 60)
    users = _users(pr, 1)
    held = []
    for _ in range(3):
        r = Raw(pr, d["key"])
        assert r.line().startswith(d["greet"])
        held.append(r)
    refused, g = _refused(pr, proto, "127.0.0.1")
    assert refused, g
    assert wait_for(lambda: "reason=max_unauth_connections_per_ip" in
                    pr.log(daemon), 60)
    # Another address is not affected.
    r = Raw(pr, d["key"], source="127.0.0.2")
    assert r.line().startswith(d["greet"])
    r.close()
    _login(pr, proto, held[0], users[0])
    r = Raw(pr, d["key"])
    assert r.line().startswith(d["greet"])
    held.append(r)
    for r in held:
        r.close()
    assert_alive(pr, proto)


@pytest.mark.parametrize("proto", ["pop3", "imap"])
def test_unfinished_line_is_still_idle(pr, proto):
    """A connection that sent half a command (no line end) and then went
    quiet is as idle as one that sent nothing: one byte must not keep a
    slot out of eviction's reach. Each filler sends a whole command and
    half of the next in one write; its reply shows the server read both."""
    d = PROTOS[proto]
    daemon = d["daemon"]
    start(pr, proto, max_connections=str(TABLE),
          max_unauth_connections_per_ip=str(TABLE),
          preauth_timeout="10m", tls_handshake_timeout="10m")
    assert wait_for(lambda: _settled(pr, daemon), 60)
    users = _users(pr, 1)
    cmd = d["noop"] if proto == "imap" else b"NOOP\r\n"
    fillers = []
    while True:
        r = Raw(pr, d["key"])
        g = r.line()
        if not g.startswith(d["greet"]):
            r.close()
            break
        r.send(cmd + b"x NOO")
        assert r.line(), "no reply to the whole command"
        fillers.append(r)
    assert fillers
    r = Raw(pr, d["key"], source="127.0.0.2")
    g = r.line()
    assert g.startswith(d["greet"]), g
    _login(pr, proto, r, users[0])
    assert wait_for(lambda: " evict peer=127.0.0.1 " in pr.log(daemon), 60)
    r.close()
    for f in fillers:
        f.close()
    assert_alive(pr, proto)
