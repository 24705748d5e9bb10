"""Raw IMAP session helper for the imapd end-to-end tests: sends bytes,
reads responses (with literals) up to the tagged reply. Standard library
only, so the client side is independent of our own code."""
import imaplib
import re
import socket
import ssl
import time

from conftest import PASSWORD, client_tls_context

LIT_RE = re.compile(rb"\{(\d+)\}\r\n$")


class Raw:
    def __init__(self, pr, key="imap", tls=False, timeout=10):
        self.pr = pr
        self.sock = pr.connect(key, tls=tls, timeout=timeout)
        self.buf = b""
        self.n = 0
        self.greeting = self.line()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self):
        d = self.sock.recv(65536)
        if not d:
            raise EOFError("connection closed")
        self.buf += d

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

    def tag(self):
        self.n += 1
        return "t%d" % self.n

    def cmd(self, text, tag=None):
        """Sends `tag text`, returns (untagged lines, tagged line) as bytes."""
        tag = tag or self.tag()
        self.send("%s %s\r\n" % (tag, text) if isinstance(text, str)
                  else tag.encode() + b" " + text + b"\r\n")
        return self.until(tag)

    def until(self, tag):
        tag = tag.encode() if isinstance(tag, str) else tag
        unt = []
        while True:
            ln = self.line()
            if ln.startswith(tag + b" "):
                return unt, ln
            unt.append(ln)

    def ok(self, text):
        unt, t = self.cmd(text)
        assert t.split(b" ")[1] == b"OK", (text, unt, t)
        return unt, t

    def starttls(self):
        unt, t = self.cmd("STARTTLS")
        assert b" OK " in t
        self.sock = client_tls_context().wrap_socket(
            self.sock, server_hostname="mail.example.test")
        self.buf = b""

    def login(self, user="alice@example.test", password=PASSWORD):
        return self.ok('LOGIN "%s" "%s"' % (user, password))

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


def plain_instance(pr):
    """An instance that allows plaintext LOGIN, with alice and bob."""
    pr.write_config(allow_plaintext_auth="yes")
    pr.add_user("alice@example.test")
    pr.add_user("bob@example.test")
    return pr


def imaplib_login(pr, user="alice@example.test"):
    m = imaplib.IMAP4("127.0.0.1", pr.port("imap"))
    m.login(user, PASSWORD)
    return m


def msg(subject="hello", body="Hello world body\r\n", frm="Bob <bob@example.test>",
        to="alice@example.test", extra=""):
    return ("From: %s\r\nTo: %s\r\nSubject: %s\r\n"
            "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <%s@example.test>\r\n%s\r\n%s"
            % (frm, to, subject, abs(hash(subject + body)), extra, body)).encode()


def wait_for(fn, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = fn()
        if r:
            return r
        time.sleep(0.05)
    return fn()
