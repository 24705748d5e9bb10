"""Raw IMAP client for the extension tests: bytes in and out, literals,
an optional RFC 4978 DEFLATE layer (Python's zlib, raw deflate both ways),
so the client side is independent of our own code."""
import itertools
import re
import smtplib
import socket
import zlib

from conftest import PASSWORD

LIT_RE = re.compile(rb"\{(\d+)\}\r\n$")
_users = itertools.count(1)


def new_user(pr):
    return pr.add_user("x%d@example.test" % next(_users))


def message(subject="hello", body="Hello world body\r\n", to="x@example.test",
            size=0):
    if size:
        body = ("line of filler text for a bigger message %06d\r\n" * (size // 50 + 1)) % \
            tuple(range(size // 50 + 1))
    return ("From: Bob <bob@example.test>\r\nTo: %s\r\nSubject: %s\r\n"
            "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
            "Message-ID: <%s.%d@example.test>\r\n\r\n%s"
            % (to, subject, subject.replace(" ", "."), next(_users), body)).encode()


def smtp_deliver(pr, to, subject="via smtp"):
    """Delivers through smtpd (another process); returns after the 250."""
    with smtplib.SMTP("127.0.0.1", pr.port("smtp"), timeout=30) as s:
        s.ehlo("client.test")
        s.sendmail("bob@example.test", [to], message(subject, to=to))


class Raw:
    def __init__(self, pr, timeout=30):
        self.sock = socket.create_connection(("127.0.0.1", pr.port("imap")),
                                             timeout=timeout)
        self.buf = b""
        self.n = 0
        self.inflater = None
        self.deflater = None
        self.wire_in = 0
        self.greeting = self.line()

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

    def start_compress(self):
        """After the tagged OK of COMPRESS DEFLATE: everything is deflated;
        bytes already received past the OK are compressed ones."""
        self.deflater = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.inflater = zlib.decompressobj(-15)
        if self.buf:
            pending, self.buf = self.buf, b""
            self.buf = self.inflater.decompress(pending)

    def line(self):
        """One response line; a literal's bytes are appended to it."""
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
        """Sends `tag text`, returns (untagged lines, tagged line) as str."""
        tag = tag or self.tag()
        self.send("%s %s\r\n" % (tag, text))
        return self.until(tag)

    def until(self, tag):
        unt = []
        while True:
            ln = self.line().decode("latin-1")
            if ln.startswith(tag + " "):
                return unt, ln.rstrip("\r\n")
            unt.append(ln.rstrip("\r\n"))

    def ok(self, text):
        unt, t = self.cmd(text)
        assert t.split(" ")[1] == "OK", (text, unt, t)
        return unt, t

    def login(self, user, password=PASSWORD):
        return self.ok('LOGIN "%s" "%s"' % (user, password))

    def append(self, box, data, flags=""):
        tag = self.tag()
        self.send("%s APPEND %s %s{%d+}\r\n" % (tag, box, flags + " " if flags else "",
                                                len(data)))
        self.send(data + b"\r\n")
        return self.until(tag)

    def wait_untagged(self, pred):
        """Reads untagged lines until pred(line) is true (the socket timeout
        is the generous bound); returns every line read."""
        seen = []
        while True:
            ln = self.line().decode("latin-1").rstrip("\r\n")
            seen.append(ln)
            if pred(ln):
                return seen

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def login(pr, user):
    r = Raw(pr)
    r.login(user)
    return r
