"""Helpers of the extension tests: the shared raw connection of
tests/proto/imap_common.py in its text flavour (with the DEFLATE layer for
COMPRESS), fresh users, messages, and delivery through smtpd."""
import smtplib

from imap_common import RawConn, message, module_instance, new_user  # noqa: F401


class Raw(RawConn):
    """Response lines as str without CRLF."""

    def __init__(self, pr, timeout=30):
        super().__init__(pr, timeout=timeout, text=True)


def smtp_deliver(pr, to, subject="via smtp"):
    """Delivers through smtpd (another process); returns after the 250."""
    with smtplib.SMTP("127.0.0.1", pr.port("smtp"), timeout=30) as s:
        s.ehlo("client.test")
        s.sendmail("bob@example.test", [to], message(subject, to=to))


def login(pr, user):
    r = Raw(pr)
    r.login(user)
    return r
