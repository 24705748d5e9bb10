"""Client-side helpers shared by the imapd end-to-end suites (tests/proto/
imap, imap_ext, imap_ext2): a raw IMAP connection that reads responses
with their literals (bytes or text flavour, optional RFC 4978 DEFLATE
layer), test messages, fresh users, imaplib clients and raw commands over
imaplib, and a per-module instance fixture. Standard library only, so the
client side is independent of our own code."""
import imaplib
import itertools
import re
import socket
import ssl
import time
import zlib

import pytest

from conftest import PASSWORD, WRAP_SCALE, Postroom, client_tls_context

LIT_RE = re.compile(rb"\{(\d+)\}\r\n$")
_seq = itertools.count(1)


def new_user(pr, prefix="x"):
    """A fresh user on pr (unique within the test run)."""
    return pr.add_user("%s%d@example.test" % (prefix, next(_seq)))


def message(subject="hello", body="Hello world body\r\n", frm="Bob <bob@example.test>",
            to="x@example.test", extra="", size=0):
    """A small RFC 5322 message as bytes; size > 0 pads the body to about
    that many octets."""
    if size:
        body = ("line of filler text for a bigger message %06d\r\n" * (size // 50 + 1)) % \
            tuple(range(size // 50 + 1))
    return ("From: %s\r\nTo: %s\r\nSubject: %s\r\n"
            "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
            "Message-ID: <%s.%d@example.test>\r\n%s\r\n%s"
            % (frm, to, subject, subject.replace(" ", "."), next(_seq), extra,
               body)).encode()


def wait_for(fn, timeout=5.0):
    """Polls fn until it returns something true or timeout passes (scaled
    by WRAP_SCALE under a wrapper such as valgrind); returns its last
    result (tests assert on it, never on the time taken)."""
    deadline = time.time() + timeout * WRAP_SCALE
    while time.time() < deadline:
        r = fn()
        if r:
            return r
        time.sleep(0.05)
    return fn()


def module_instance(name, daemons=("imapd",), **config):
    """A module-scoped fixture `name`: one instance with plaintext LOGIN
    allowed (plus config) running daemons, stopped (and checked) at the
    end of the module."""
    @pytest.fixture(scope="module", name=name)
    def fixture():
        inst = Postroom(extra_config={"allow_plaintext_auth": "yes", **config})
        try:
            inst.start(*daemons)
            yield inst
        finally:
            inst.stop_all()
    return fixture


class RawConn:
    """One IMAP connection, bytes in and out. Response lines come back as
    bytes (text=False) or as str without CRLF (text=True)."""

    def __init__(self, pr, key="imap", tls=False, timeout=10, text=False):
        self.pr = pr
        self.text = text
        self.sock = pr.connect(key, tls=tls, timeout=timeout)
        self.buf = b""
        self.n = 0
        self.inflater = None
        self.deflater = None
        self.wire_in = 0
        self.greeting = self.line()          # bytes in both flavours

    # -- transport ---------------------------------------------------
    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        if self.deflater is not None:
            data = self.deflater.compress(data) + self.deflater.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def _fill(self):
        d = self.sock.recv(65536)
        if not d:
            raise EOFError("connection closed")
        self.wire_in += len(d)
        if self.inflater is not None:
            d = self.inflater.decompress(d)
        self.buf += d

    def _out(self, ln):
        return ln.decode("latin-1").rstrip("\r\n") if self.text else ln

    def start_compress(self):
        """After the tagged OK of COMPRESS DEFLATE: everything is deflated;
        bytes already received past the OK are compressed ones."""
        self.deflater = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.inflater = zlib.decompressobj(-15)
        if self.buf:
            pending, self.buf = self.buf, b""
            self.buf = self.inflater.decompress(pending)

    def starttls(self):
        unt, t = self.cmd("STARTTLS")
        assert b" OK " in (t.encode() if self.text else t)
        self.sock = client_tls_context().wrap_socket(
            self.sock, server_hostname="mail.example.test")
        self.buf = b""

    def line(self):
        """One response line as bytes; a literal's bytes are appended."""
        while b"\r\n" not in self.buf:
            self._fill()
        i = self.buf.index(b"\r\n") + 2
        out, self.buf = self.buf[:i], self.buf[i:]
        m = LIT_RE.search(out)
        while m:
            n = int(m.group(1))
            while len(self.buf) < n:
                self._fill()
            out += self.buf[:n]
            self.buf = self.buf[n:]
            while b"\r\n" not in self.buf:
                self._fill()
            i = self.buf.index(b"\r\n") + 2
            rest, self.buf = self.buf[:i], self.buf[i:]
            out += rest
            m = LIT_RE.search(rest)
        return out

    # -- commands ----------------------------------------------------
    def tag(self):
        self.n += 1
        return "t%d" % self.n

    def cmd(self, text, tag=None):
        """Sends `tag text`, returns (untagged lines, tagged line)."""
        tag = tag or self.tag()
        self.send("%s %s\r\n" % (tag, text) if isinstance(text, str)
                  else tag.encode() + b" " + text + b"\r\n")
        return self.until(tag)

    def until(self, tag):
        want = tag.encode() + b" " if isinstance(tag, str) else tag + b" "
        unt = []
        while True:
            ln = self.line()
            if ln.startswith(want):
                return unt, self._out(ln)
            unt.append(self._out(ln))

    def ok(self, text):
        unt, t = self.cmd(text)
        status = t.split(" " if self.text else b" ")[1]
        assert status in ("OK", b"OK"), (text, unt, t)
        return unt, t

    def login(self, user="alice@example.test", password=PASSWORD):
        return self.ok('LOGIN "%s" "%s"' % (user, password))

    def append(self, box, data, flags=""):
        """APPEND with a LITERAL+ literal; returns (untagged, tagged)."""
        tag = self.tag()
        self.send("%s APPEND %s %s{%d+}\r\n" % (tag, box, flags + " " if flags else "",
                                                len(data)))
        self.send(data + b"\r\n")
        return self.until(tag)

    def wait_untagged(self, pred):
        """Reads lines until pred(line) is true (the socket timeout is the
        generous bound); returns every line read."""
        seen = []
        while True:
            ln = self._out(self.line())
            seen.append(ln)
            if pred(ln):
                return seen

    def closed(self, timeout=5):
        """True once the server closed the connection."""
        self.sock.settimeout(timeout)
        try:
            while True:
                d = self.sock.recv(65536)
                if not d:
                    return True
                self.buf += d
        except (ConnectionResetError, ssl.SSLError, OSError):
            return True
        except socket.timeout:
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# -- imaplib --------------------------------------------------------------
def imaplib_client(pr, user="alice@example.test"):
    m = imaplib.IMAP4("127.0.0.1", pr.port("imap"), timeout=30)
    m.login(user, PASSWORD)
    return m


def imaplib_raw(m, cmd):
    """Runs cmd on an imaplib client for syntax imaplib has no verb for;
    returns (status, untagged lines as str, tagged line)."""
    tag = m._new_tag().decode()
    m.send(("%s %s\r\n" % (tag, cmd)).encode())
    lines = []
    while True:
        line = m.readline().decode("latin-1").rstrip("\r\n")
        lit = re.search(r"\{(\d+)\}$", line)
        if lit:
            line += "\r\n" + m.read(int(lit.group(1))).decode("latin-1")
            line += m.readline().decode("latin-1").rstrip("\r\n")
        if line.startswith(tag + " "):
            return line.split()[1], lines, line
        lines.append(line)


def imaplib_ok(m, cmd):
    typ, lines, tagged = imaplib_raw(m, cmd)
    assert typ == "OK", (cmd, tagged, lines)
    return lines, tagged
