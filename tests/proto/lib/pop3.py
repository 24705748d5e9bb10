"""POP3 clients for the pop3d suites: a raw POP3 client that reads
multi-line replies byte-exactly (poplib strips and unstuffs lines, which
hides exactly what these tests check), and the numbered test message."""
import os

import pytest

from .instance import BIN, PASSWORD, client_tls_context
from .lines import RawLine
from .mail import message

HAVE_SMTPD = os.path.exists(os.path.join(BIN, "smtpd"))
HAVE_IMAPD = os.path.exists(os.path.join(BIN, "imapd"))


def need_smtpd():
    if not HAVE_SMTPD:
        pytest.skip(f"needs smtpd to deliver the test mail ({BIN}/smtpd not built yet)")


def simple_msg(n, extra=b""):
    """Message n (bytes, no Date or Message-ID), extra appended to the body."""
    return message("message %d" % n, "Body of message %d.\r\n" % n,
                   frm="Sender <sender@example.org>", to="rcpt@example.test",
                   date=None, msgid=None) + extra


class Raw(RawLine):
    """A line-level POP3 client over a plain or TLS socket."""

    line = RawLine.raw_line

    @classmethod
    def connect(cls, inst, tls=False, stls=False, timeout=20):
        r = cls(inst.connect("pop3s" if tls else "pop3", tls=tls, timeout=timeout))
        greeting = r.line()
        assert greeting.startswith(b"+OK"), greeting
        if stls:
            assert r.cmd("STLS").startswith(b"+OK")
            r.s = client_tls_context().wrap_socket(r.s, server_hostname="mail.example.test")
        return r

    def cmd(self, c):
        self.send(c + "\r\n" if isinstance(c, str) else c + b"\r\n")
        return self.line()

    def multi(self):
        """The body of a multi-line reply, unstuffed, CRLF kept."""
        out = []
        while True:
            ln = self.line()
            if ln == b".":
                return b"".join(out)
            if ln.startswith(b"."):
                ln = ln[1:]
            out.append(ln + b"\r\n")

    def login(self, user, password=PASSWORD):
        assert self.cmd("USER " + user).startswith(b"+OK")
        r = self.cmd("PASS " + password)
        assert r.startswith(b"+OK"), r
        return r
