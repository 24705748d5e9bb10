"""imapd: \\Recent across sessions (RFC 3501 §2.3.2, issue 10 item 7).
Exactly one read-write session sees a new message as recent, and it learns
so with the EXISTS that announces it: the RECENT right after that EXISTS
counts it. A third session's STATUS then says RECENT 0. Also what SELECT
reports from the store's counters (EXISTS, RECENT, UNSEEN) while the view
is read lazily, and changes made between SELECT and the first command."""
import imaplib
import re

from lib import wait_for
from lib.imap import Raw, append_ok as append, msg, plain_instance
from lib.instance import PASSWORD


def sessions(pr, n):
    plain_instance(pr)
    pr.start("imapd")
    out = [Raw(pr) for _ in range(n)]
    for r in out:
        r.login()
    return out


def counts(unt):
    """(EXISTS, RECENT that directly follows it) of a reply, or None."""
    for i, ln in enumerate(unt):
        m = re.match(rb"\* (\d+) EXISTS\r\n", ln)
        if m:
            nxt = unt[i + 1] if i + 1 < len(unt) else b""
            r = re.match(rb"\* (\d+) RECENT\r\n", nxt)
            return int(m.group(1)), int(r.group(1)) if r else None
    return None


def recent_flags(r):
    unt, t = r.ok("FETCH 1:* (FLAGS)")
    return [b"\\Recent" in u for u in unt if b" FETCH " in u]


def status_recent(r, box="INBOX"):
    unt, t = r.ok("STATUS %s (RECENT)" % box)
    return int(re.search(rb"RECENT (\d+)", unt[0]).group(1))


def noop_until_exists(r):
    return wait_for(lambda: counts(r.ok("NOOP")[0]))


def test_copy_into_mailbox_selected_elsewhere(pr):
    a, b, c = sessions(pr, 3)
    b.ok("CREATE Work")
    for i in range(3):
        append(b, msg("w%d" % i), "Work")
    a.ok("SELECT INBOX")
    b.ok("SELECT Work")
    b.ok("COPY 1:3 INBOX")
    assert noop_until_exists(a) == (3, 3)
    assert recent_flags(a) == [True, True, True]
    # no late unsolicited RECENT, and nobody else sees them as recent
    assert not [u for u in a.ok("NOOP")[0] if b"RECENT" in u]
    assert status_recent(c) == 0
    c.ok("SELECT INBOX")
    assert recent_flags(c) == [False, False, False]
    for r in (a, b, c):
        r.close()


def test_append_elsewhere_recent_with_exists(pr):
    a, b, c = sessions(pr, 3)
    a.ok("SELECT INBOX")
    append(b, msg("one"))
    assert noop_until_exists(a) == (1, 1)
    assert recent_flags(a) == [True]
    assert not [u for u in a.ok("NOOP")[0] if b"RECENT" in u]
    assert status_recent(c) == 0
    # the same while idling: EXISTS and RECENT 2 together
    a.send("i IDLE\r\n")
    assert a.line().startswith(b"+ ")
    append(b, msg("two"))
    seen = a.wait_untagged(lambda ln: b"EXISTS" in ln)
    assert seen[-1] == b"* 2 EXISTS\r\n"
    assert a.line() == b"* 2 RECENT\r\n"
    a.send("DONE\r\n")
    a.until("i")
    assert recent_flags(a) == [True, True]
    assert status_recent(c) == 0
    for r in (a, b, c):
        r.close()


def test_append_to_own_selected_mailbox(pr):
    a, c = sessions(pr, 2)
    a.ok("SELECT INBOX")
    unt = append(a, msg("mine"))
    assert counts(unt) == (1, 1), unt
    assert recent_flags(a) == [True]
    assert status_recent(c) == 0


def test_exactly_one_of_two_selected_sessions(pr):
    a, b, c = sessions(pr, 3)
    a.ok("SELECT INBOX")
    b.ok("SELECT INBOX")
    for i in range(6):
        append(c, msg("r%d" % i))
        got = [noop_until_exists(r) for r in (a, b)]
        assert sorted(x[0] for x in got) == [i + 1, i + 1], got
        recent_now = [x[1] for x in got]
        # each is told with its EXISTS; together they hold every one
        assert None not in recent_now, got
    fa, fb = recent_flags(a), recent_flags(b)
    assert not any(x and y for x, y in zip(fa, fb)), (fa, fb)
    assert all(x or y for x, y in zip(fa, fb)), (fa, fb)
    assert status_recent(c) == 0


def test_imaplib_three_sessions(pr):
    plain_instance(pr)
    pr.start("imapd")
    port = pr.port("imap")
    ms = []
    for _ in range(3):
        m = imaplib.IMAP4("127.0.0.1", port)
        m.login("alice@example.test", PASSWORD)
        ms.append(m)
    a, b, c = ms
    a.select("INBOX")
    b.append("INBOX", None, None, msg("x"))
    a.untagged_responses.clear()
    typ, _ = a.noop()
    assert typ == "OK"
    assert a.untagged_responses.get("EXISTS") == [b"1"]
    assert a.untagged_responses.get("RECENT") == [b"1"]
    typ, data = c.status("INBOX", "(RECENT MESSAGES)")
    assert b"RECENT 0" in data[0] and b"MESSAGES 1" in data[0], data
    for m in ms:
        m.logout()


def test_select_counts_and_changes_before_first_command(pr):
    a, b = sessions(pr, 2)
    for i in range(5):
        append(b, msg("m%d" % i), flags="(\\Seen)" if i in (0, 1, 3) else "")
    unt, t = a.ok("SELECT INBOX")
    assert b"* 5 EXISTS\r\n" in unt
    assert b"* 5 RECENT\r\n" in unt
    assert b"* OK [UNSEEN 3] First unseen\r\n" in unt
    hms = int(re.search(rb"HIGHESTMODSEQ (\d+)", b"".join(unt)).group(1))
    # between the SELECT and a's first command: a flag change, an
    # expunge and a delivery; a hears of each, in order
    b.ok("SELECT INBOX")
    b.ok("STORE 1 +FLAGS.SILENT (\\Flagged)")
    b.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    b.ok("EXPUNGE")
    append(b, msg("late"))
    unt, t = a.ok("NOOP")
    assert b"* 2 EXPUNGE\r\n" in unt, unt
    assert any(u.startswith(b"* 1 FETCH") and b"\\Flagged" in u for u in unt), unt
    assert b"* 5 EXISTS\r\n" in unt, unt
    unt, t = a.ok("FETCH 1:* (UID MODSEQ)")
    assert len([u for u in unt if b" FETCH " in u]) == 5
    assert max(int(x) for x in re.findall(rb"MODSEQ \((\d+)\)", b"".join(unt))) > hms


def test_examine_reports_unclaimed_recent(pr):
    a, b = sessions(pr, 2)
    append(b, msg("e"))
    unt, t = a.ok("EXAMINE INBOX")
    assert b"* 1 RECENT\r\n" in unt
    assert b"* OK [UNSEEN 1] First unseen\r\n" in unt
    assert recent_flags(a) == [True]
    # EXAMINE does not claim: a SELECT afterwards still gets it
    unt, t = b.ok("SELECT INBOX")
    assert b"* 1 RECENT\r\n" in unt


def test_select_recent_kept_when_mail_comes_before_first_command(pr):
    a, b = sessions(pr, 2)
    for i in range(2):
        append(b, msg("s%d" % i))
    unt, t = a.ok("SELECT INBOX")
    assert b"* 2 RECENT\r\n" in unt
    # delivered before a's first command: that command's claim takes it,
    # and the two the SELECT counted stay \Recent
    append(b, msg("late"))
    assert recent_flags(a) == [True, True, True]
