"""imapd: the selected-mailbox view against other sessions. \\Recent is
claimed by exactly one session (RFC 3501 §2.3.2), a mailbox deleted
elsewhere ends the session with BYE (as Dovecot), SEARCH sees messages
expunged elsewhere but not yet reported by their last known state, and
RECENT comes with EXISTS, not alone after an EXPUNGE (RFC 3501 §7.3)."""
import re

from lib import wait_for
from lib.imap import Raw, append_ok as append, msg, plain_instance, two_sessions


def flags_by_uid(r):
    unt, t = r.ok("FETCH 1:* (UID FLAGS)")
    out = {}
    for u in unt:
        m = re.match(rb"\* \d+ FETCH \(UID (\d+) FLAGS \(([^)]*)\)\)", u)
        if m:
            out[int(m.group(1))] = m.group(2).split()
    return out


def a_tag(r):
    """Sends NOOP without waiting; returns its tag."""
    t = r.tag()
    r.send("%s NOOP\r\n" % t)
    return t


def test_recent_claimed_by_one_session_only(pr):
    plain_instance(pr)
    pr.start("imapd")
    a, b, c = Raw(pr), Raw(pr), Raw(pr)
    for r in (a, b, c):
        r.login()
    a.ok("SELECT INBOX")
    b.ok("SELECT INBOX")
    n = 12
    for i in range(n):
        append(c, msg("r%d" % i))
        # both sessions race to see the new message
        exists = b"* %d EXISTS\r\n" % (i + 1)
        told = set()

        def both_told():
            ta, tb = a_tag(a), a_tag(b)
            ua, ub = a.until(ta)[0], b.until(tb)[0]
            told.update(x for x, u in (("a", ua), ("b", ub)) if exists in u)
            return told == {"a", "b"}
        wait_for(both_told)
    # the last claims finish on a worker: wait until each message is
    # recent somewhere (nothing raced a claim here, so none is lost)
    def flags():
        fa, fb = flags_by_uid(a), flags_by_uid(b)
        if all(b"\\Recent" in fa[u] or b"\\Recent" in fb[u] for u in fa):
            return fa, fb
        return None
    fa, fb = wait_for(flags) or (flags_by_uid(a), flags_by_uid(b))
    assert set(fa) == set(fb) and len(fa) == n
    both = [u for u in fa if b"\\Recent" in fa[u] and b"\\Recent" in fb[u]]
    assert both == [], (fa, fb)
    assert all(b"\\Recent" in fa[u] or b"\\Recent" in fb[u] for u in fa), (fa, fb)
    # SEARCH RECENT agrees with FLAGS in each session
    for r, f in ((a, fa), (b, fb)):
        unt, t = r.ok("UID SEARCH RECENT")
        got = [int(x) for x in unt[-1].split()[2:]]
        assert got == sorted(u for u in f if b"\\Recent" in f[u])
    for r in (a, b, c):
        r.close()


def test_recent_reported_during_idle(pr):
    plain_instance(pr)
    pr.start("imapd")
    a, c = Raw(pr), Raw(pr)
    a.login()
    c.login()
    a.ok("SELECT INBOX")
    a.send("i IDLE\r\n")
    assert a.line().startswith(b"+ ")
    append(c, msg("idle"))
    seen = []
    while b"* 1 RECENT\r\n" not in seen:
        seen.append(a.line())
    assert b"* 1 EXISTS\r\n" in seen
    a.send("DONE\r\n")
    unt, t = a.until("i")
    assert b" OK " in t
    f = flags_by_uid(a)
    assert list(f.values()) == [[b"\\Recent"]], f
    # the claim was this session's: another one sees nothing recent
    c.ok("SELECT INBOX")
    assert list(flags_by_uid(c).values()) == [[]]
    a.close()
    c.close()


def test_selected_mailbox_deleted_elsewhere(pr):
    a, b = two_sessions(pr)
    b.ok("CREATE Work")
    append(b, msg("w"), "Work")
    a.ok("SELECT Work")
    b.ok("DELETE Work")
    bye = wait_for(lambda: [u for u in a.cmd("NOOP")[0] if u.startswith(b"* BYE")])
    assert bye == [b"* BYE Selected mailbox was deleted, have to disconnect.\r\n"]
    assert a.closed()
    # the same while idling, and after a delete and re-create (a new id)
    b.ok("CREATE Work")
    a = Raw(pr)
    a.login()
    a.ok("SELECT Work")
    a.send("i IDLE\r\n")
    assert a.line().startswith(b"+ ")
    b.ok("DELETE Work")
    b.ok("CREATE Work")
    ln = a.line()
    while not ln.startswith(b"* BYE"):
        ln = a.line()
    assert ln == b"* BYE Selected mailbox was deleted, have to disconnect.\r\n"
    assert a.closed()
    # a rename keeps the mailbox (and its UIDs): the session goes on
    a = Raw(pr)
    a.login()
    append(b, msg("w2"), "Work")
    a.ok("SELECT Work")
    b.ok("RENAME Work Play")
    unt, t = a.ok("FETCH 1 (UID)")
    assert unt == [b"* 1 FETCH (UID 1)\r\n"], unt
    a.close()
    b.close()


def test_search_sees_unreported_expunges_by_last_state(pr):
    a, b = two_sessions(pr)
    for i in range(3):
        append(b, msg("s%d" % i, body="needle %d\r\n" % i))
    a.ok("SELECT INBOX")
    b.ok("SELECT INBOX")
    b.ok("STORE 1 +FLAGS.SILENT (\\Flagged)")
    assert wait_for(lambda: [u for u in a.ok("NOOP")[0] if b"\\Flagged" in u])
    b.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    b.ok("EXPUNGE")
    # a learns of the expunge (FETCH by MSN may not tell it) ...
    assert wait_for(lambda: b"EXPUNGEISSUED" in a.cmd("FETCH 1 (BODY.PEEK[TEXT])")[1])
    a.ok("FETCH 1 (UID)")
    # ... but still has MSN 1: it is found by what a knows of it
    unt, t = a.ok("SEARCH ALL")
    assert unt == [b"* SEARCH 1 2 3\r\n"], unt
    unt, t = a.ok("SEARCH FLAGGED")
    assert unt == [b"* SEARCH 1\r\n"], unt
    # its text is gone: text keys never match it, NOT included
    unt, t = a.ok("SEARCH BODY needle")
    assert unt == [b"* SEARCH 2 3\r\n"], unt
    unt, t = a.ok("SEARCH NOT BODY nothing-like-this")
    assert unt == [b"* SEARCH 2 3\r\n"], unt
    unt, t = a.ok("NOOP")
    assert b"* 1 EXPUNGE\r\n" in unt
    unt, t = a.ok("SEARCH ALL")
    assert unt == [b"* SEARCH 1 2\r\n"], unt
    a.close()
    b.close()


def test_recent_not_sent_alone_after_expunge(pr):
    a, b = two_sessions(pr)
    for i in range(2):
        append(b, msg("e%d" % i))
    unt, t = a.ok("SELECT INBOX")
    assert b"* 2 RECENT\r\n" in unt
    a.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    unt, t = a.ok("EXPUNGE")
    assert unt == [b"* 1 EXPUNGE\r\n"], unt
    unt, t = a.ok("NOOP")
    assert unt == [], unt
    # new mail: EXISTS with RECENT counting what is recent now
    append(b, msg("e2"))
    unt = wait_for(lambda: [u for u in a.ok("NOOP")[0]])
    assert unt[0] == b"* 2 EXISTS\r\n", unt
    got = wait_for(lambda: b"* 2 RECENT\r\n" in unt + a.ok("NOOP")[0])
    assert got, unt
    a.close()
    b.close()
