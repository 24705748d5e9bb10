"""IMAP clients for the imapd suites: a raw connection that reads responses
with their literals (bytes or text flavour, optional RFC 4978 DEFLATE layer),
raw commands over imaplib, a few reply parsers, and a per-module instance
fixture with plaintext LOGIN allowed. Standard library only, so the client
side is independent of our own code."""
import imaplib
import re
import socket
import ssl
import zlib

import pytest

from .instance import PASSWORD, WRAP_SCALE, Instance, client_tls_context
from .mail import message, new_user

LIT_RE = re.compile(rb"\{(\d+)\}\r\n$")


def module_instance(name, daemons=("imapd",), **config):
    """A module-scoped fixture `name`: one instance with plaintext LOGIN
    allowed (plus config) running daemons, stopped (and checked) at the
    end of the module."""
    @pytest.fixture(scope="module", name=name)
    def fixture():
        inst = Instance(extra_config={"allow_plaintext_auth": "yes", **config})
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

    def closed(self, timeout=30):
        """True once the server closed the connection."""
        self.sock.settimeout(timeout * WRAP_SCALE)
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


def imaplib_fill(m, n, box="INBOX", prefix="msg"):
    """APPENDs n small messages "prefix 1".. "prefix n" with imaplib."""
    for i in range(n):
        subject = "%s %d" % (prefix, i + 1)
        typ, data = m.append(box, None, None,
                             message(subject, "body of %s\r\n" % subject))
        assert typ == "OK", data


def imaplib_caps(m):
    """The CAPABILITY list of an imaplib client, upper-cased, as a set."""
    typ, data = m.capability()
    return set(data[0].decode().upper().split())


def modseq_of(lines):
    """{uid or msn: modseq} from FETCH lines."""
    out = {}
    for x in lines:
        f = re.match(r"\* (\d+) FETCH \((.*)\)$", x)
        if not f:
            continue
        u = re.search(r"UID (\d+)", f.group(2))
        ms = re.search(r"MODSEQ \((\d+)\)", f.group(2))
        if ms:
            out[int(u.group(1)) if u else int(f.group(1))] = int(ms.group(1))
    return out


class Raw(RawConn):
    """RawConn with responses as bytes, CRLF kept."""

    def __init__(self, pr, key="imap", tls=False, timeout=10):
        super().__init__(pr, key=key, tls=tls, timeout=timeout, text=False)


class TextRaw(RawConn):
    """RawConn with response lines as str without CRLF."""

    def __init__(self, pr, timeout=30):
        super().__init__(pr, timeout=timeout, text=True)


def raw_login(pr, user):
    """A TextRaw session logged in as user."""
    r = TextRaw(pr)
    r.login(user)
    return r


def msg(subject="hello", body="Hello world body\r\n", **kw):
    """message() addressed to alice@example.test unless to= says otherwise."""
    kw.setdefault("to", "alice@example.test")
    return message(subject, body, **kw)


def plain_instance(pr):
    """An instance that allows plaintext LOGIN, with alice and bob."""
    pr.write_config(allow_plaintext_auth="yes")
    pr.add_user("alice@example.test")
    pr.add_user("bob@example.test")
    return pr


def append_ok(r, text, mbox="INBOX", flags=""):
    """APPEND (LITERAL+) over a bytes Raw that must succeed; returns the
    untagged lines."""
    data = text if isinstance(text, bytes) else text.encode()
    unt, t = r.append(mbox, data, flags.strip())
    assert b" OK " in t, t
    return unt


def two_sessions(pr):
    """Starts imapd on a plain instance; two bytes Raw sessions logged in
    as alice."""
    plain_instance(pr)
    pr.start("imapd")
    a, b = Raw(pr), Raw(pr)
    a.login()
    b.login()
    return a, b


def caps_of(line):
    """The capabilities of a CAPABILITY response or response code, as a
    set (str line)."""
    m = re.search(r"CAPABILITY ([^\]\r]*)", line)
    return set(m.group(1).upper().split())


def raw_fill(r, n, box="INBOX", to="x@example.test"):
    """APPENDs n messages "msg 1".."msg n" over a TextRaw."""
    for i in range(n):
        unt, t = r.append(box, message("msg %d" % (i + 1), to=to))
        assert " OK " in t, t


def uids(r):
    """The UIDs of the selected mailbox (TextRaw)."""
    unt, t = r.ok("UID SEARCH ALL")
    return [int(x) for x in unt[-1].split()[2:]]


def two_selected(pr, n):
    """A fresh user with n messages and two TextRaw sessions that selected
    its INBOX: (user, a, b)."""
    user = new_user(pr)
    a = raw_login(pr, user)
    raw_fill(a, n, to=user)
    a.ok("SELECT INBOX")
    b = raw_login(pr, user)
    b.ok("SELECT INBOX")
    return user, a, b
