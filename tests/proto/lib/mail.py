"""Test mail: the one message builder, delivery over SMTP, fresh users and
a polling helper for state that changes in another process."""
import itertools
import smtplib
import time

from .instance import WRAP_SCALE

DATE = "Mon, 23 Nov 2026 10:00:00 +0000"
AUTO = object()
_seq = itertools.count(1)
FILLER = "0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWX\r\n"


def message(subject="hello", body="Hello world body\r\n", frm="Bob <bob@example.test>",
            to="x@example.test", extra="", size=None, date=DATE, msgid=AUTO,
            text=False):
    """An RFC 5322 message with CRLF line ends: From, To, Subject, Date,
    Message-ID, the `extra` header lines (each ending in CRLF), an empty
    line and the body. date=None or msgid=None leave that header out; the
    default Message-ID is <subject.N@example.test>, unique in the run.
    size pads (or cuts) the body with filler lines so that the whole
    message is exactly size octets. Bytes, or str with text=True."""
    if msgid is AUTO:
        msgid = "<%s.%d@example.test>" % (subject.replace(" ", "."), next(_seq))
    head = "From: %s\r\nTo: %s\r\nSubject: %s\r\n" % (frm, to, subject)
    if date is not None:
        head += "Date: %s\r\n" % date
    if msgid is not None:
        head += "Message-ID: %s\r\n" % msgid
    head += extra + "\r\n"
    if size is not None:
        body = (FILLER * (size // len(FILLER) + 1))[:max(0, size - len(head) - 2)] + "\r\n"
    out = head + body
    return out if text else out.encode()


def deliver(inst, rcpt, data, sender="sender@example.org"):
    """Delivers data (bytes or str, CRLF line ends) to rcpt through inst's
    smtpd on the MX port (no auth); returns after the 250 and raises on a
    refusal."""
    with smtplib.SMTP("127.0.0.1", inst.port("smtp"), timeout=30 * WRAP_SCALE) as s:
        s.ehlo("client.test")
        refused = s.sendmail(sender, [rcpt], data)
        assert not refused, refused


def new_user(inst, prefix="x"):
    """A fresh user on inst (unique within the test run); returns the
    address."""
    return inst.add_user("%s%d@example.test" % (prefix, next(_seq)))


def wait_for(fn, timeout=30.0, step=0.05):
    """Polls fn until it returns something true or timeout passes (scaled
    by WRAP_SCALE under a wrapper such as valgrind); returns its last
    result. The timeout is a generous bound for a loaded machine: tests
    assert on the result, never on the time taken."""
    deadline = time.time() + timeout * WRAP_SCALE
    while time.time() < deadline:
        r = fn()
        if r:
            return r
        time.sleep(step)
    return fn()
