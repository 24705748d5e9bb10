"""Helpers for the abuse tests: one small description per protocol (how to
tell a greeting, a harmless command and its reply), raw sockets, and the
daemon's resource use read from /proc (RSS, open descriptors).

The tests are black-box: they only talk to the network face of smtpd, pop3d
and imapd and look at the process from outside.
"""
import os
import socket
import threading
import time

from lib import PASSWORD, WRAP_SCALE, RawLine

USER = "abuse@example.test"

# Config shared by the abuse tests: short pre-auth timeout so a trickling peer
# is cut quickly, plaintext AUTH so guessing does not need TLS on every try.
BASE_CONFIG = {
    "allow_plaintext_auth": "yes",
    "preauth_timeout": "3s",
    # As many unauthenticated as max_connections_per_ip allows (the parallel
    # guessing tests open 30 sessions from one address); test_fairness tests
    # the lower default limit.
    "max_unauth_connections_per_ip": "100",
}

PROTOS = {
    "smtp": dict(daemon="smtpd", key="smtp", tls_key="smtps",
                 greet=b"220", noop=b"NOOP\r\n", ok=b"250"),
    "pop3": dict(daemon="pop3d", key="pop3", tls_key="pop3s",
                 greet=b"+OK", noop=b"NOOP\r\n", ok=b"+OK"),
    "imap": dict(daemon="imapd", key="imap", tls_key="imaps",
                 greet=b"* OK", noop=b"a NOOP\r\n", ok=b"a OK"),
}


def proc_status(pid, field):
    """A kB field of /proc/PID/status (VmRSS, VmHWM) in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for {pid}")


def reset_peak(pid):
    """Resets VmHWM to the current RSS (Linux 4.0+), so that a peak measured
    afterwards is the flood's and not that of an earlier Argon2id hash."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def daemon_pid(pr, proto):
    return pr.procs[PROTOS[proto]["daemon"]].pid


def assert_alive(pr, proto):
    p = pr.procs[PROTOS[proto]["daemon"]]
    assert p.poll() is None, f"{proto} daemon died: {pr.log(PROTOS[proto]['daemon'])[-3000:]}"


class Raw(RawLine):
    """A raw socket with a line reader; no protocol knowledge."""

    def __init__(self, pr, key, source="127.0.0.1", timeout=30):
        super().__init__(socket.create_connection(
            ("127.0.0.1", pr.port(key)), timeout=timeout * WRAP_SCALE,
            source_address=(source, 0)))

    def line(self):
        """One line without CRLF; b'' at EOF."""
        while b"\n" not in self.buf:
            try:
                d = self.s.recv(65536)
            except ConnectionResetError:
                d = b""
            if not d:
                out, self.buf = self.buf, b""
                return out
            self.buf += d
        out, self.buf = self.buf.split(b"\n", 1)
        return out.rstrip(b"\r")

    def until(self, prefix):
        """Lines up to and including the first that starts with prefix."""
        lines = []
        while True:
            ln = self.line()
            lines.append(ln)
            if ln.startswith(prefix) or ln == b"" and not self.buf:
                return lines


def login(pr, proto, raw):
    """Authenticates raw (greeting already read) as USER over plaintext."""
    if proto == "pop3":
        raw.send(f"USER {USER}\r\nPASS {PASSWORD}\r\n".encode())
        assert raw.line().startswith(b"+OK")
        ln = raw.line()
        assert ln.startswith(b"+OK"), ln
    elif proto == "imap":
        raw.send(f'l LOGIN "{USER}" "{PASSWORD}"\r\n'.encode())
        ln = raw.until(b"l ")[-1]
        assert ln.startswith(b"l OK"), ln


def fresh_session(pr, proto, source="127.0.0.1"):
    """A new, well-behaved client is greeted and served."""
    d = PROTOS[proto]
    r = Raw(pr, d["key"], source=source)
    try:
        g = r.line()
        assert g.startswith(d["greet"]), g
        if proto == "pop3":
            r.send(b"CAPA\r\n")
            assert r.line().startswith(b"+OK")
            r.until(b".")
        else:
            r.send(d["noop"])
            ln = r.until(d["ok"][:2] if proto == "smtp" else b"a ")[-1]
            assert ln.startswith(d["ok"]), ln
    finally:
        r.close()


def start(pr, proto, **config):
    cfg = dict(BASE_CONFIG)
    cfg.update(config)
    pr.write_config(**cfg)
    if proto != "smtp":
        pr.add_user(USER)
    # ASan keeps freed memory in a quarantine (256 MiB by default) that
    # would swamp any RSS bound; a small one still catches use-after-free.
    asan = os.environ.get("ASAN_OPTIONS", "")
    asan = (asan + ":" if asan else "") + \
        "quarantine_size_mb=8:thread_local_quarantine_size_kb=256"
    pr.start(PROTOS[proto]["daemon"], env={"ASAN_OPTIONS": asan})
    return daemon_pid(pr, proto)


class Drain(threading.Thread):
    """Reads a socket until EOF/error, counting CRLF-terminated lines."""

    def __init__(self, s):
        super().__init__(daemon=True)
        self.s = s
        self.lines = 0
        self.tail = b""
        self.bytes = 0

    def run(self):
        try:
            while True:
                d = self.s.recv(1 << 16)
                if not d:
                    return
                self.bytes += len(d)
                self.lines += d.count(b"\n")
                self.tail = (self.tail + d)[-4096:]
        except OSError:
            return


def wait_for(pred, timeout, step=0.1):
    """Polls pred() until true or timeout (scaled when wrapped)."""
    deadline = time.time() + timeout * WRAP_SCALE
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()
