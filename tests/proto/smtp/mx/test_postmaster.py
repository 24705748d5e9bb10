"""postmaster@ every local domain, and abuse@, reach a person even when
nobody created them (RFC 5321 4.5.1, RFC 2142): the rule an administrator
reads in README (an own user or alias first; abuse@D goes where
postmaster@D goes; else the postmaster@ of the first local domain, by
name, that has one; else the first user created). Through smtplib on the
MX listener, RCPT TO:<postmaster> without a domain included."""
import smtplib

import pytest

from lib.smtp import ALICE, BOB, CAROL, find, token, token_message

OTHER = "other.test"


def send(inst, rcpt, tok):
    """One message from a remote sender to rcpt; the RCPT reply code."""
    with smtplib.SMTP("127.0.0.1", inst.port("smtp"), timeout=60) as c:
        c.ehlo("client.test")
        c.mail("x@remote.test")
        code, _ = c.rcpt(rcpt)
        if code == 250:
            c.data(token_message(tok))
        else:
            c.rset()
        return code


@pytest.fixture
def pm(pr):
    pr.add_user(ALICE)          # the first user created
    pr.add_user(BOB)
    pr.add_user(CAROL)
    pr.mailctl("domain", "add", OTHER)
    pr.start("smtpd")
    return pr


def landed(inst, address, tok):
    return len(find(inst, address, tok))


def test_unconfigured_reaches_first_user(pm):
    for rcpt in ("postmaster@example.test", f"postmaster@{OTHER}",
                 "Postmaster@EXAMPLE.test", "abuse@example.test",
                 f"abuse@{OTHER}", "postmaster+x@example.test",
                 "postmaster"):
        tok = token()
        assert send(pm, rcpt, tok) == 250, rcpt
        assert landed(pm, ALICE, tok) == 1, rcpt
        assert landed(pm, BOB, tok) == 0 and landed(pm, CAROL, tok) == 0
    # Other unknown names are still unknown; other domains still no relay.
    assert send(pm, "nobody@example.test", token()) == 550
    assert send(pm, "postmaster@remote.test", token()) == 554


def test_one_alias_serves_every_domain(pm):
    pm.mailctl("alias", "add", f"postmaster@{OTHER}", CAROL)
    for rcpt in ("postmaster@example.test", f"postmaster@{OTHER}",
                 "abuse@example.test", "postmaster"):
        tok = token()
        assert send(pm, rcpt, tok) == 250, rcpt
        assert landed(pm, CAROL, tok) == 1, rcpt
        assert landed(pm, ALICE, tok) == 0, rcpt


def test_own_aliases_win(pm):
    pm.mailctl("alias", "add", f"postmaster@{OTHER}", CAROL)
    pm.mailctl("alias", "add", "postmaster@example.test", BOB)
    pm.mailctl("alias", "add", f"abuse@{OTHER}", ALICE)
    for rcpt, who in (("postmaster@example.test", BOB),
                      (f"postmaster@{OTHER}", CAROL),
                      ("abuse@example.test", BOB),
                      (f"abuse@{OTHER}", ALICE)):
        tok = token()
        assert send(pm, rcpt, tok) == 250, rcpt
        assert landed(pm, who, tok) == 1, (rcpt, who)


def test_no_user_at_all(pr):
    """With no user anywhere there is nobody to reach: refused, not lost."""
    pr.mailctl("domain", "add", "example.test")
    pr.start("smtpd")
    assert send(pr, "postmaster@example.test", token()) == 550
