"""Abuse tests against the network faces of smtpd, pop3d and imapd: slow
peers, floods, garbage, guessing and churn. Each asserts that limits hold,
memory and descriptors stay bounded, and that a fresh, honest client is still
served afterwards. No assertion is on wall-clock time: deadlines below are
generous upper bounds for something the daemon must do eventually.
"""
import random
import re
import socket
import ssl
import threading
import time

import pytest

from conftest import PASSWORD, WRAP_SCALE, client_tls_context
from abuse_util import (PROTOS, USER, Drain, Raw, assert_alive, daemon_pid,
                        fd_count, fresh_session, login, proc_status, reset_peak,
                        start,
                        wait_for)

ALL = ["smtp", "pop3", "imap"]
MiB = 1024 * 1024


# ---- slowloris --------------------------------------------------------------

@pytest.mark.parametrize("proto", ALL)
def test_slowloris(pr, proto):
    """Many peers trickle one byte at a time and never finish a line: the
    per-address limit refuses the surplus, an honest client from another
    address is served meanwhile, and the idle timeout still cuts the
    tricklers although every one of them keeps sending."""
    start(pr, proto, max_connections_per_ip="10")
    d = PROTOS[proto]
    conns, refused = [], 0
    for _ in range(16):
        r = Raw(pr, d["key"])
        g = r.line()
        if g.startswith(d["greet"]):
            conns.append(r)
        else:
            refused += 1
            r.close()
    # At most the limit; fewer if the harness's port probes are not yet
    # seen closed by the daemon.
    assert 7 <= len(conns) <= 10 and refused >= 6, (len(conns), refused)

    fresh_session(pr, proto, source="127.0.0.2")

    alive = list(conns)
    deadline = time.time() + 40 * WRAP_SCALE
    sent = 0
    while alive and time.time() < deadline:
        for r in list(alive):
            try:
                r.s.send(b"N")
                r.s.setblocking(False)
                try:
                    if r.s.recv(4096) == b"":
                        raise ConnectionResetError
                except BlockingIOError:
                    pass
                finally:
                    r.s.setblocking(True)
            except OSError:
                alive.remove(r)
        sent += 1
        time.sleep(0.5)
    for r in conns:
        r.close()
    assert not alive, f"{len(alive)} trickling peers outlived the timeout " \
        f"after {sent} bytes each"
    # The slots are free again for the first address.
    assert wait_for(lambda: _served(pr, proto), 10)
    assert_alive(pr, proto)


def _served(pr, proto):
    try:
        fresh_session(pr, proto)
        return True
    except (AssertionError, OSError):
        return False


# ---- pipelined flood ----------------------------------------------------------

@pytest.mark.parametrize("proto", ALL)
def test_pipelined_flood(pr, proto):
    """100,000 pipelined commands on one connection, sent as fast as the
    socket takes them: every one is answered and the daemon's peak RSS grows
    by far less than the flood (the reader stops when output backs up)."""
    n = 100_000
    pid = start(pr, proto)
    d = PROTOS[proto]
    fresh_session(pr, proto)
    r = Raw(pr, d["key"], timeout=60)
    assert r.line().startswith(d["greet"])
    login(pr, proto, r)
    if proto == "smtp":
        r.send(b"EHLO flood.test\r\n")
        r.until(b"250 ")
    reset_peak(pid)
    rss0 = proc_status(pid, "VmRSS")
    assert not r.buf
    drain = Drain(r.s)
    drain.start()
    chunk = d["noop"] * 1000
    for _ in range(n // 1000):
        r.s.sendall(chunk)
    assert wait_for(lambda: drain.lines >= n, 120), \
        f"{drain.lines} of {n} replies; tail {drain.tail[-200:]!r}"
    hwm = proc_status(pid, "VmHWM")
    assert hwm - rss0 < 64 * MiB, f"peak RSS grew {(hwm - rss0) // MiB} MiB"
    last = drain.tail.rstrip(b"\r\n").rsplit(b"\n", 1)[-1]
    assert last.startswith(d["ok"]), last
    r.close()
    fresh_session(pr, proto)
    assert_alive(pr, proto)


@pytest.mark.parametrize("proto", ALL)
def test_unterminated_flood(pr, proto):
    """Megabytes without a line feed: the line cap skips them with bounded
    memory, and the session (or at least the daemon) carries on."""
    pid = start(pr, proto)
    d = PROTOS[proto]
    fresh_session(pr, proto)
    reset_peak(pid)
    rss0 = proc_status(pid, "VmRSS")
    r = Raw(pr, d["key"], timeout=60)
    assert r.line().startswith(d["greet"])
    drain = Drain(r.s)
    drain.start()
    try:
        blob = b"A" * (1 << 20)
        for _ in range(64):
            r.s.sendall(blob)
    except OSError:
        pass        # the daemon may close a peer that does this
    hwm = proc_status(pid, "VmHWM")
    assert hwm - rss0 < 64 * MiB, f"peak RSS grew {(hwm - rss0) // MiB} MiB"
    r.close()
    fresh_session(pr, proto)
    assert_alive(pr, proto)


# ---- huge IMAP literals before authentication -------------------------------

HUGE_LITERALS = [
    b"a LOGIN {4294967295}\r\n",
    b"a LOGIN {4294967296}\r\n",
    b"a LOGIN {18446744073709551615}\r\n",
    b"a LOGIN {99999999999999999999999999}\r\n",
    b"a LOGIN {4294967295+}\r\n",
    b"a AUTHENTICATE PLAIN {4294967295}\r\n",
    b"a LOGIN {100000000}\r\n",
]


def test_imap_nonsync_literal_preauth_ends_session(pr):
    """Before login, a non-synchronizing literal over the pre-auth cap ends
    the session at once: the server does not sit draining megabytes for an
    anonymous peer (after login such a literal is read and dropped)."""
    start(pr, "imap")
    r = Raw(pr, "imap")
    assert r.line().startswith(b"* OK")
    r.send(b"a LOGIN {50000000+}\r\n" + b"x" * 4096)
    lines = r.until(b"a ")
    assert any(x.startswith(b"* BYE") for x in lines) or \
        r.line().startswith(b"* BYE"), lines
    assert r.is_closed()
    fresh_session(pr, "imap")
    assert_alive(pr, "imap")


@pytest.mark.parametrize("announce", HUGE_LITERALS,
                         ids=[x.decode().strip() for x in HUGE_LITERALS])
def test_imap_huge_literal_preauth(pr, announce):
    """A literal announced before login larger than the pre-auth cap gets no
    continuation ("+"): a tagged BAD/NO or a BYE, never an allocation of
    that size, and the daemon serves the next client."""
    pid = start(pr, "imap")
    reset_peak(pid)
    rss0 = proc_status(pid, "VmRSS")
    r = Raw(pr, "imap")
    assert r.line().startswith(b"* OK")
    r.send(announce)
    ln = r.line()
    assert not ln.startswith(b"+"), f"continuation for {announce!r}: {ln!r}"
    assert ln == b"" or re.match(rb"(a (BAD|NO) |\* BYE )", ln), ln
    # Whatever follows must not be taken as literal data of that size.
    if ln.startswith(b"a "):
        try:
            r.send(b"b NOOP\r\n")
            ln2 = r.until(b"b ")[-1]
            assert ln2 == b"" or ln2.startswith(b"b OK") or \
                ln2.startswith(b"* BYE"), ln2
        except OSError:
            pass
    r.close()
    assert proc_status(pid, "VmHWM") - rss0 < 64 * MiB
    fresh_session(pr, "imap")
    assert_alive(pr, "imap")


# ---- AUTH guessing ----------------------------------------------------------

def _plain(user, pw):
    import base64
    return base64.b64encode(f"\0{user}\0{pw}".encode())


def test_smtp_auth_guessing(pr):
    """Wrong passwords on submission: 535 with a growing per-address
    failure count, then 421 and the connection closes; the next session
    from that address is refused AUTH at once."""
    start(pr, "smtp")
    pr.add_user(USER)
    r = Raw(pr, "submission", timeout=60)
    assert r.line().startswith(b"220")
    r.send(b"EHLO guess.test\r\n")
    r.until(b"250 ")
    codes = []
    for i in range(10):
        try:
            r.send(b"AUTH PLAIN " + _plain(USER, f"wrong{i}") + b"\r\n")
        except OSError:
            break
        ln = r.line()
        if not ln:
            break
        codes.append(ln[:3])
        if ln.startswith(b"421"):
            break
    assert codes[:1] == [b"535"], codes
    assert codes[-1] == b"421", codes
    assert len(codes) <= 6, codes
    assert r.is_closed()
    fails = [int(x) for x in re.findall(
        r"login user=\S+ result=fail .*?failures=(\d+)", pr.log("smtpd"))]
    assert fails == sorted(fails) and fails[-1] > fails[0], fails
    r2 = Raw(pr, "submission")
    assert r2.line().startswith(b"220")
    r2.send(b"EHLO guess.test\r\nAUTH PLAIN " + _plain(USER, PASSWORD) + b"\r\n")
    r2.until(b"250 ")
    assert r2.line().startswith(b"421")


def test_pop3_auth_guessing(pr):
    """Wrong passwords: -ERR after a growing delay, then the session ends."""
    start(pr, "pop3")
    r = Raw(pr, "pop3", timeout=60)
    assert r.line().startswith(b"+OK")
    replies = []
    for i in range(10):
        try:
            r.send(f"USER {USER}\r\nPASS wrong{i}\r\n".encode())
        except OSError:
            break
        u = r.line()
        if not u:
            break
        p = r.line()
        replies.append(p)
        if not p:
            break
    errs = [x for x in replies if x.startswith(b"-ERR")]
    assert 1 <= len(errs) <= 4, replies
    assert r.is_closed()
    delays = [float(x) for x in re.findall(r"result=fail .*?delay=([\d.]+)",
                                           pr.log("pop3d"))]
    assert len(delays) >= 2 and delays == sorted(delays) and \
        delays[-1] > delays[0], delays


def test_imap_auth_guessing(pr):
    """Wrong passwords: NO, then the session is closed with BYE."""
    start(pr, "imap")
    r = Raw(pr, "imap", timeout=60)
    assert r.line().startswith(b"* OK")
    lines = []
    for i in range(10):
        try:
            r.send(f'g{i} LOGIN "{USER}" "wrong{i}"\r\n'.encode())
        except OSError:
            break
        got = r.until(f"g{i} ".encode())
        lines += got
        if got[-1] == b"" or any(x.startswith(b"* BYE") for x in got):
            break
    nos = [x for x in lines if re.match(rb"g\d+ NO", x)]
    assert 1 <= len(nos) <= 5, lines
    assert any(x.startswith(b"* BYE") for x in lines) or lines[-1] == b"", lines
    assert r.is_closed()


def _parallel(n, fn):
    out = [None] * n
    ts = [threading.Thread(target=lambda i=i: out.__setitem__(i, fn(i)))
          for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60 * WRAP_SCALE)
    return out


def test_smtp_auth_guessing_parallel(pr):
    """Once an address has failed, guesses in parallel sessions from it
    are counted together with the checks still running: no more passwords
    are checked than the per-address limit (5) allows. (A first burst is
    not limited, so that many honest logins from one NAT all pass.)"""
    start(pr, "smtp")
    pr.add_user(USER)
    r = Raw(pr, "submission", timeout=60)
    assert r.line().startswith(b"220")
    r.send(b"EHLO guess.test\r\nAUTH PLAIN " + _plain(USER, "first") + b"\r\n")
    r.until(b"250 ")
    assert r.line().startswith(b"535")
    r.close()
    rs = []
    for i in range(20):
        r = Raw(pr, "submission", timeout=60)
        assert r.line().startswith(b"220")
        r.send(b"EHLO guess.test\r\n")
        r.until(b"250 ")
        rs.append(r)

    def guess(i):
        try:
            rs[i].send(b"AUTH PLAIN " + _plain(USER, f"par{i}") + b"\r\n")
            return rs[i].line()[:3]
        except OSError:
            return b""
    codes = _parallel(len(rs), guess)
    # 535 after the delay, or 421 once the address reached the limit (also
    # for a guess that was checked but finished after others failed).
    assert codes.count(b"535") + codes.count(b"421") == len(rs), codes
    checked = len(re.findall(r"login user=\S+ result=fail", pr.log("smtpd")))
    assert 2 <= checked <= 5, checked


def test_pop3_auth_guessing_parallel(pr):
    """As above for POP3: at most the per-address limit of passwords are
    checked; the rest are refused at once and the session closes."""
    # Longer than the delays (up to 15 s) that the checked guesses wait.
    start(pr, "pop3", preauth_timeout="60s")
    r = Raw(pr, "pop3", timeout=60)
    assert r.line().startswith(b"+OK")
    r.send(f"USER {USER}\r\nPASS first\r\n".encode())
    assert r.line().startswith(b"+OK")
    assert r.line().startswith(b"-ERR [AUTH] Authentication failed")
    r.close()
    rs = []
    for i in range(30):
        r = Raw(pr, "pop3", timeout=60)
        assert r.line().startswith(b"+OK")
        r.send(f"USER {USER}\r\n".encode())
        assert r.line().startswith(b"+OK")
        rs.append(r)

    def guess(i):
        try:
            rs[i].send(f"PASS par{i}\r\n".encode())
            return rs[i].line()
        except OSError:
            return b""
    replies = _parallel(len(rs), guess)
    failed = [x for x in replies if x.startswith(b"-ERR [AUTH] Authentication failed")]
    refused = [x for x in replies if b"Too many" in x]
    assert len(failed) + len(refused) == len(rs), \
        [x for x in replies if x not in failed + refused]
    assert 1 <= len(failed) <= 9, replies
    assert len(refused) >= len(rs) - 9


def test_imap_auth_guessing_parallel(pr):
    """As above for IMAP: once the address has failed, at most the
    per-address limit (10) of passwords are checked; the other sessions get
    BYE and NO at once, without a password check."""
    start(pr, "imap", preauth_timeout="60s")
    r = Raw(pr, "imap", timeout=60)
    assert r.line().startswith(b"* OK")
    r.send(f'a LOGIN "{USER}" "first"\r\n'.encode())
    assert r.until(b"a ")[-1].startswith(b"a NO")
    r.close()
    rs = []
    for i in range(30):
        r = Raw(pr, "imap", timeout=60)
        assert r.line().startswith(b"* OK")
        rs.append(r)

    def guess(i):
        try:
            rs[i].send(f'g LOGIN "{USER}" "par{i}"\r\n'.encode())
            return rs[i].until(b"g ")
        except OSError:
            return [b""]
    replies = _parallel(len(rs), guess)
    refused = [x for x in replies if b"* BYE Too many failed logins" in x]
    failed = [x for x in replies if x not in refused and x[-1].startswith(b"g NO")]
    assert len(failed) + len(refused) == len(rs), replies
    assert 1 <= len(failed) <= 9, replies
    assert len(refused) >= len(rs) - 9
    checked = len(re.findall(r"login user=\S+ result=fail", pr.log("imapd")))
    assert checked <= 10, checked


# ---- STARTTLS injection -----------------------------------------------------

def _tls(r):
    ctx = client_tls_context()
    r.s = ctx.wrap_socket(r.s, server_hostname="mail.example.test")
    r.buf = b""


def test_smtp_starttls_injection(pr):
    """Plaintext pipelined after STARTTLS is discarded, not run after the
    handshake (CVE-2011-0411 class)."""
    start(pr, "smtp")
    r = Raw(pr, "smtp")
    assert r.line().startswith(b"220")
    r.send(b"EHLO inj.test\r\n")
    r.until(b"250 ")
    r.send(b"STARTTLS\r\nHELP\r\n")
    assert r.line().startswith(b"220")
    assert r.buf == b""
    _tls(r)
    r.send(b"NOOP\r\n")
    ln = r.line()
    assert ln.startswith(b"250"), f"injected command answered: {ln!r}"


def test_pop3_starttls_injection(pr):
    start(pr, "pop3")
    r = Raw(pr, "pop3")
    assert r.line().startswith(b"+OK")
    r.send(b"STLS\r\nCAPA\r\n")
    assert r.line().startswith(b"+OK")
    assert r.buf == b""
    _tls(r)
    r.send(b"NOOP\r\n")
    ln = r.line()
    assert ln.startswith(b"-ERR"), f"injected command answered: {ln!r}"


def test_imap_starttls_injection(pr):
    start(pr, "imap")
    r = Raw(pr, "imap")
    assert r.line().startswith(b"* OK")
    r.send(b"a STARTTLS\r\nb CAPABILITY\r\n")
    ln = r.until(b"a ")[-1]
    assert ln.startswith(b"a OK"), ln
    assert r.buf == b""
    _tls(r)
    r.send(b"c NOOP\r\n")
    lines = r.until(b"c ")
    assert not any(x.startswith(b"b ") for x in lines), \
        f"injected command answered: {lines!r}"
    assert lines[-1].startswith(b"c OK"), lines


# ---- NUL bytes and 8-bit garbage --------------------------------------------

GARBAGE = {
    "smtp": [b"NO\x00OP\r\n", b"\xff\xfe\xfd\xfc\r\n", b"EHLO \x00\r\n",
             b"MAIL FROM:<a\x00b@example.org>\r\n", b"HELO \xc3\x28\x80\r\n",
             b"\x00\x00\x00\r\n", b"\x80\r\n"],
    "pop3": [b"NO\x00OP\r\n", b"\xff\xfe\xfd\xfc\r\n", b"USER a\x00b\r\n",
             b"USER \xc3\x28@example.test\r\n", b"\x00\x00\x00\r\n",
             b"APOP \xff \xfe\r\n", b"\x80\r\n"],
    "imap": [b"a NO\x00OP\r\n", b"\xff\xfe\xfd\xfc\r\n",
             b"a LOGIN \x00 \xff\r\n", b'a LOGIN "a\x00b" "c"\r\n',
             b"a\x00 NOOP\r\n", b"a LOGIN {3}\r\n", b"\x00\x00\x00\r\n",
             b"a SELECT \xc3\x28\r\n"],
}

ERROR_REPLY = {"smtp": rb"[45]\d\d", "pop3": rb"-ERR", "imap": rb"(\S+ (BAD|NO)|\* BAD|\+)"}


@pytest.mark.parametrize("proto", ALL)
def test_nul_and_8bit(pr, proto):
    """Each garbage line gets an error reply (or, past the error limit, the
    session ends); the daemon serves the next client."""
    start(pr, proto)
    d = PROTOS[proto]
    r = Raw(pr, d["key"])
    assert r.line().startswith(d["greet"])
    for g in GARBAGE[proto]:
        try:
            r.send(g)
        except OSError:
            break
        ln = r.line()
        if ln == b"":
            break
        if proto == "imap" and ln.startswith(b"+"):
            r.send(b"\x00\xff\x00\r\n")
            ln = r.line()
        if proto == "pop3" and g.startswith(b"USER ") and b"\x00" not in g:
            # USER answers +OK for any name: no user enumeration.
            assert ln.startswith(b"+OK"), (g, ln)
            continue
        assert re.match(ERROR_REPLY[proto], ln), (g, ln)
    r.close()
    fresh_session(pr, proto)
    assert_alive(pr, proto)


# ---- random byte streams ----------------------------------------------------

def _noise(rng, size):
    """Random bytes with line ends and protocol words mixed in, so that the
    parsers get past the first token now and then."""
    words = [b"\r\n", b"\n", b" ", b"{", b"}", b"{5}\r\n", b"{4294967295+}\r\n",
             b"\"", b"(", b")", b"NOOP", b"EHLO", b"MAIL FROM:<", b"RCPT TO:<",
             b"DATA\r\n", b"BDAT 10\r\n", b"AUTH PLAIN", b"USER ", b"PASS ",
             b"a LOGIN ", b"a SELECT INBOX", b"a FETCH 1:* ", b"\x00", b"\xff"]
    out = bytearray()
    while len(out) < size:
        if rng.random() < 0.3:
            out += rng.choice(words)
        else:
            out += bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 40)))
    return bytes(out[:size])


@pytest.mark.parametrize("proto", ALL)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_streams(pr, proto, seed):
    """Seeded random byte streams on plain and TLS ports: the daemon stays
    up and a fresh session is served afterwards."""
    rng = random.Random(seed * 7919 + len(proto))
    start(pr, proto)
    d = PROTOS[proto]
    for i in range(12):
        key = d["tls_key"] if i % 4 == 3 else d["key"]
        try:
            s = pr.connect(key, tls=(key == d["tls_key"]), timeout=10)
        except (OSError, ssl.SSLError):
            continue
        drain = Drain(s)
        drain.start()
        try:
            data = _noise(rng, rng.randint(1, 96 * 1024))
            for off in range(0, len(data), 4096):
                s.sendall(data[off:off + 4096])
        except (OSError, ssl.SSLError):
            pass
        try:
            s.shutdown(socket.SHUT_WR) if key == d["key"] else None
        except OSError:
            pass
        drain.join(timeout=5 * WRAP_SCALE)
        s.close()
        assert_alive(pr, proto)
    fresh_session(pr, proto)
    assert_alive(pr, proto)


# ---- connection churn -------------------------------------------------------

@pytest.mark.parametrize("proto", ALL)
def test_connection_churn(pr, proto):
    """10,000 connect/close cycles (FIN, RST, after the greeting, and some
    half-done TLS handshakes): the daemon's descriptor count returns to its
    baseline and RSS stays bounded."""
    pid = start(pr, proto, max_connections_per_ip="1000")
    d = PROTOS[proto]
    fresh_session(pr, proto)
    time.sleep(0.2)
    base_fd = fd_count(pid)
    rss0 = proc_status(pid, "VmRSS")
    linger = bytes(8)
    import struct
    linger = struct.pack("ii", 1, 0)
    for i in range(10_000):
        key = d["tls_key"] if i % 10 == 9 else d["key"]
        try:
            s = socket.create_connection(("127.0.0.1", pr.port(key)), timeout=10)
        except OSError:
            continue
        try:
            if i % 3 == 1:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            elif i % 3 == 2 and key == d["key"]:
                s.recv(100)
            elif key == d["tls_key"]:
                s.sendall(b"\x16\x03\x01\x00\x05hello")
        except OSError:
            pass
        s.close()
    assert wait_for(lambda: fd_count(pid) <= base_fd, 60), \
        f"fds {fd_count(pid)} > baseline {base_fd}"
    assert proc_status(pid, "VmRSS") - rss0 < 64 * MiB
    fresh_session(pr, proto)
    assert_alive(pr, proto)
