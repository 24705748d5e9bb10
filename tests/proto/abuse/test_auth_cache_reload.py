"""auth_cache_ttl is read again on SIGHUP: set to 0 the cache is emptied
and a repeated login is checked again (its log line has no cached=yes);
set back, logins are cached again. Seen through the login log lines and
the "- auth-cache ttl=N" line, never through time."""
import re
import signal
import time

from lib import PASSWORD, WRAP_SCALE
from lib.logins import imap_login, pop3_login

USER = "reload@example.test"


def _cached(pr, daemon):
    return len(re.findall(r"login user=\S+ result=ok .*cached=yes",
                          pr.log(daemon)))


def _reload(pr, daemon, ttl):
    """Rewrites auth_cache_ttl (to another value), sends SIGHUP and waits
    for the line saying the cache took it."""
    before = pr.log(daemon).count(f"- auth-cache ttl={ttl}\n")
    pr.write_config(auth_cache_ttl=ttl)
    pr.signal(daemon, signal.SIGHUP)
    deadline = time.time() + 60 * WRAP_SCALE
    while pr.log(daemon).count(f"- auth-cache ttl={ttl}\n") == before:
        assert time.time() < deadline, pr.log(daemon)[-3000:]
        time.sleep(0.05)


def test_sighup_applies_auth_cache_ttl(pr):
    pr.write_config(allow_plaintext_auth="yes")
    pr.add_user(USER)
    pr.start("imapd", "pop3d")
    imap_login(pr, USER, PASSWORD).logout()
    imap_login(pr, USER, PASSWORD).logout()
    assert _cached(pr, "imapd") == 1
    _reload(pr, "imapd", "0")
    imap_login(pr, USER, PASSWORD).logout()
    imap_login(pr, USER, PASSWORD).logout()
    assert _cached(pr, "imapd") == 1            # the cache is off
    _reload(pr, "imapd", "600")
    imap_login(pr, USER, PASSWORD).logout()
    imap_login(pr, USER, PASSWORD).logout()
    assert _cached(pr, "imapd") == 2            # on again


def test_sighup_before_any_login(pr):
    """A daemon reloaded before its first login sets its cache up with the
    value read at the reload, not the one of its start."""
    pr.write_config(allow_plaintext_auth="yes")
    pr.add_user(USER)
    pr.start("pop3d")
    _reload(pr, "pop3d", "0")
    pop3_login(pr, USER).quit()
    pop3_login(pr, USER).quit()
    assert _cached(pr, "pop3d") == 0
