"""The verified-credentials cache (auth_cache_ttl): a repeated login is
answered from it (its log line says cached=yes), yet a password changed
with mailctl counts at the very next login, a deleted user cannot log in,
a failure is never remembered, and auth_cache_ttl = 0 turns it off. Also
that password hashing has its own threads: an APPEND completes while a
storm of uncached logins is still being checked."""
import imaplib
import re
import select
import socket
import time

import pytest

from lib import PASSWORD, WRAP_SCALE
from lib.logins import imap_login, pop3_login

USER = "cache@example.test"


def _start(pr, **cfg):
    pr.write_config(allow_plaintext_auth="yes", **cfg)
    pr.add_user(USER)
    pr.start("imapd", "pop3d")


def _cached(pr, daemon="imapd"):
    return len(re.findall(r"login user=\S+ result=ok .*cached=yes",
                          pr.log(daemon)))


def _imap_ok(pr, pw):
    try:
        imap_login(pr, USER, pw).logout()
        return True
    except imaplib.IMAP4.error:
        return False


def test_repeated_login_is_cached(pr):
    _start(pr)
    assert _imap_ok(pr, PASSWORD)
    assert _cached(pr) == 0
    assert _imap_ok(pr, PASSWORD)
    assert _imap_ok(pr, PASSWORD)
    assert _cached(pr) == 2
    # Another password for the same user is not let in by the entry.
    assert not _imap_ok(pr, PASSWORD + "x")
    pop3_login(pr, USER).quit()
    pop3_login(pr, USER).quit()
    assert _cached(pr, "pop3d") == 1


def test_password_change_counts_at_next_login(pr):
    _start(pr)
    assert _imap_ok(pr, PASSWORD)
    assert _imap_ok(pr, PASSWORD)
    assert _cached(pr) == 1               # the old password is cached
    pr.mailctl("user", "passwd", USER, "--password-stdin",
               input="a new passphrase\n")
    assert not _imap_ok(pr, PASSWORD)
    assert _imap_ok(pr, "a new passphrase")
    # Set again to the same value: a new salt, so the entry no longer
    # matches either; the next login is checked again.
    n = _cached(pr)
    pr.mailctl("user", "passwd", USER, "--password-stdin",
               input="a new passphrase\n")
    assert _imap_ok(pr, "a new passphrase")
    assert _cached(pr) == n


def test_deleted_user_cannot_log_in(pr):
    _start(pr)
    assert _imap_ok(pr, PASSWORD)
    assert _imap_ok(pr, PASSWORD)
    assert _cached(pr) == 1
    pr.mailctl("user", "del", USER)
    assert not _imap_ok(pr, PASSWORD)
    # Made again with the same password: a new hash, checked afresh.
    pr.add_user(USER)
    n = _cached(pr)
    assert _imap_ok(pr, PASSWORD)
    assert _cached(pr) == n


def test_failure_never_cached(pr):
    _start(pr)
    # A wrong password that later becomes the right one must then work:
    # a remembered failure would refuse it.
    assert not _imap_ok(pr, "soon right")
    pr.mailctl("user", "passwd", USER, "--password-stdin",
               input="soon right\n")
    assert _imap_ok(pr, "soon right")
    assert _cached(pr) == 0


def test_ttl_zero_turns_it_off(pr):
    _start(pr, auth_cache_ttl="0")
    for _ in range(3):
        assert _imap_ok(pr, PASSWORD)
    assert _cached(pr) == 0


def _line_socket(pr, source):
    s = socket.create_connection(("127.0.0.1", pr.port("imap")),
                                 timeout=300 * WRAP_SCALE,
                                 source_address=(source, 0))
    f = s.makefile("rb")
    assert f.readline().startswith(b"* OK")
    return s, f


def test_append_not_behind_login_storm(pr):
    """Event-based: with two disk threads, 16 uncached logins (from 16
    addresses, so the throttle runs them all) are submitted, then an
    APPEND (the cache off: every login
    is a hash). Its tagged OK must arrive while most logins are still being
    checked: the hashes run on their own lane. Before, the APPEND queued
    behind the hashes in one FIFO and came after nearly all of them."""
    _start(pr, worker_threads="2", auth_cache_ttl="0")
    m = imap_login(pr, USER, PASSWORD)
    m.select("INBOX")
    storm = [_line_socket(pr, f"127.0.0.{10 + i}") for i in range(16)]
    for s, _ in storm:
        s.sendall(f'l LOGIN "{USER}" "{PASSWORD}"\r\n'.encode())
    # Only so that the logins are queued first (which makes the test
    # fail without the separate lane); nothing is asserted on time.
    time.sleep(0.5)
    typ, _ = m.append("INBOX", None, None, b"Subject: x\r\n\r\nbody\r\n")
    assert typ == "OK"
    ready, _, _ = select.select([s for s, _ in storm], [], [], 0)
    assert len(ready) < 8, len(ready)
    for s, f in storm:
        ln = f.readline()
        while ln.startswith(b"*"):
            ln = f.readline()
        assert ln.startswith(b"l OK"), ln
        s.close()
    m.logout()
