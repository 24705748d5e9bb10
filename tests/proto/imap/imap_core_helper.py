"""Helpers of the imapd core tests: the shared raw connection (bytes
flavour) and message builder of tests/proto/imap_common.py, and an
instance with alice and bob that allows plaintext LOGIN."""
from imap_common import RawConn, imaplib_client, message, wait_for  # noqa: F401


class Raw(RawConn):
    """Responses as bytes, CRLF kept."""

    def __init__(self, pr, key="imap", tls=False, timeout=10):
        super().__init__(pr, key=key, tls=tls, timeout=timeout, text=False)


def plain_instance(pr):
    """An instance that allows plaintext LOGIN, with alice and bob."""
    pr.write_config(allow_plaintext_auth="yes")
    pr.add_user("alice@example.test")
    pr.add_user("bob@example.test")
    return pr


def imaplib_login(pr, user="alice@example.test"):
    return imaplib_client(pr, user)


def msg(subject="hello", body="Hello world body\r\n", frm="Bob <bob@example.test>",
        to="alice@example.test", extra=""):
    return message(subject, body, frm=frm, to=to, extra=extra)


def append(r, text, mbox="INBOX", flags=""):
    """APPEND (LITERAL+) that must succeed; returns the untagged lines."""
    data = text if isinstance(text, bytes) else text.encode()
    unt, t = r.append(mbox, data, flags.strip())
    assert b" OK " in t, t
    return unt


def two_sessions(pr):
    """Starts imapd on a plain instance; two sessions logged in as alice."""
    plain_instance(pr)
    pr.start("imapd")
    a, b = Raw(pr), Raw(pr)
    a.login()
    b.login()
    return a, b
