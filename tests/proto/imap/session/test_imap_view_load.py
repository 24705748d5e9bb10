"""imapd: the view read by the first command after SELECT (one pass over
the store's records) and what SELECT reports before it: the first unseen
message found from either end of the mailbox, the SELECT's sequence
numbers kept by that first FETCH while another session expunges and
delivers, a view read in one pass equal to one built message by message,
and a SELECT with nothing to claim followed by a delivery (RECENT 1)."""
import re

from lib import wait_for
from lib.imap import Raw, append_ok as append, msg, plain_instance


def sessions(pr, n):
    plain_instance(pr)
    pr.start("imapd")
    out = [Raw(pr) for _ in range(n)]
    for r in out:
        r.login()
    return out


def fetch_lines(unt):
    """{msn: line} of the FETCH responses with a UID among unt (not the
    unsolicited FLAGS of a change made elsewhere)."""
    out = {}
    for u in unt:
        m = re.match(rb"\* (\d+) FETCH .*UID ", u)
        if m:
            out[int(m.group(1))] = u
    return out


def uid_of(line):
    return int(re.search(rb"UID (\d+)", line).group(1))


def test_first_unseen_from_either_end(pr):
    a, = sessions(pr, 1)
    # which of 8 messages are unseen -> the [UNSEEN n] expected
    cases = {"all": (set(range(1, 9)), 1), "first": ({1}, 1),
             "second": ({2, 3}, 2), "back": ({7}, 7), "last2": ({7, 8}, 7),
             "middle": ({4, 8}, 4), "none": (set(), None)}
    for name, (unseen, want) in cases.items():
        a.ok("CREATE u-%s" % name)
        for i in range(1, 9):
            append(a, msg("m%d" % i), mbox="u-%s" % name,
                   flags="" if i in unseen else "(\\Seen)")
    for name, (unseen, want) in cases.items():
        unt, t = a.ok("SELECT u-%s" % name)
        got = [u for u in unt if b"[UNSEEN " in u]
        if want is None:
            assert got == [], (name, unt)
        else:
            assert got == [b"* OK [UNSEEN %d] First unseen\r\n" % want], (name, unt)
        unt, t = a.ok("SEARCH UNSEEN")
        assert unt == [(b"* SEARCH " + b" ".join(b"%d" % i for i in sorted(unseen))).rstrip()
                       + b"\r\n"], (name, unt)
    a.close()


def test_first_fetch_keeps_select_numbers_during_expunge_and_delivery(pr):
    a, b = sessions(pr, 2)
    for i in range(10):
        append(b, msg("m%d" % i))
    unt, t = a.ok("SELECT INBOX")
    assert b"* 10 EXISTS\r\n" in unt
    # before a's first command: three expunged, one flagged, two new
    b.ok("SELECT INBOX")
    b.ok("STORE 2,5,9 +FLAGS.SILENT (\\Deleted)")
    b.ok("STORE 1 +FLAGS.SILENT (\\Flagged)")
    b.ok("EXPUNGE")
    append(b, msg("new1"))
    append(b, msg("new2"))
    # FETCH may not send EXPUNGE (RFC 3501 §7.4.1): every message of the
    # SELECT keeps its number, UID n at MSN n
    unt, t = a.ok("FETCH 1:* (UID FLAGS)")
    assert not [u for u in unt if b"EXPUNGE" in u], unt
    fl = fetch_lines(unt)
    assert fl, unt
    for msn, line in fl.items():
        assert uid_of(line) == msn, (msn, line, unt)
    assert 1 in fl and 10 in fl, unt
    # the next commands tell the expunges (by the SELECT's numbers,
    # highest first) and the new mail
    told = list(unt)

    def all_told():
        told.extend(a.ok("NOOP")[0])
        exp = [u for u in told if b"EXPUNGE" in u]
        # 7 left and 2 new: EXISTS 12 before the expunges, or 9 after
        return len(exp) >= 3 and (b"* 9 EXISTS\r\n" in told or
                                  b"* 12 EXISTS\r\n" in told)
    assert wait_for(all_told), told
    exp = [u for u in told if b"EXPUNGE" in u]
    assert exp == [b"* 9 EXPUNGE\r\n", b"* 5 EXPUNGE\r\n", b"* 2 EXPUNGE\r\n"], told
    unt, t = a.ok("UID FETCH 1:* (FLAGS)")
    fl = fetch_lines(unt)
    assert [uid_of(fl[k]) for k in sorted(fl)] == [1, 3, 4, 6, 7, 8, 10, 11, 12], unt
    assert b"\\Flagged" in fl[1]
    a.close()
    b.close()


def test_view_read_at_once_equals_view_built_by_sync(pr):
    a, b = sessions(pr, 2)
    a.ok("CREATE kw")
    # b follows the mailbox from empty: its view grows message by message
    b.ok("SELECT kw")
    for i in range(60):
        flags = ["\\Seen"] * (i % 2) + ["\\Flagged"] * (i % 3 == 0) + \
            ["$Label%d" % (i % 4)] * (i % 5 == 0)
        append(a, msg("k%d" % i, body="x" * i + "\r\n"), mbox="kw",
               flags="(%s)" % " ".join(flags) if flags else "")
    a.ok("SELECT kw")
    a.ok("STORE 7 -FLAGS.SILENT (\\Seen)")
    a.ok("STORE 10 +FLAGS.SILENT (\\Answered)")
    items = "(UID FLAGS RFC822.SIZE INTERNALDATE MODSEQ)"

    def strip_recent(unt):
        return {k: v.replace(b" \\Recent", b"").replace(b"\\Recent ", b"")
                .replace(b"\\Recent", b"") for k, v in fetch_lines(unt).items()}
    want = wait_for(lambda: (lambda f: f if len(f) == 60 and b"\\Answered" in f[10]
                             else None)(strip_recent(b.ok("FETCH 1:* " + items)[0])))
    assert want, "b never saw the 60 messages"
    c = Raw(pr)
    c.login()
    c.ok("SELECT kw")
    got = strip_recent(c.ok("FETCH 1:* " + items)[0])
    assert got == want
    for r in (a, b, c):
        r.close()


def test_select_claiming_nothing_then_delivery_recent_one(pr):
    a, b, c = sessions(pr, 3)
    for i in range(3):
        append(c, msg("old%d" % i))
    unt, t = b.ok("SELECT INBOX")
    assert b"* 3 RECENT\r\n" in unt
    b.ok("LOGOUT")
    b.close()
    # nothing past the last claim: this SELECT claims nothing
    unt, t = a.ok("SELECT INBOX")
    assert b"* 3 EXISTS\r\n" in unt and b"* 0 RECENT\r\n" in unt, unt
    append(c, msg("new"))

    def counts():
        unt = a.ok("NOOP")[0]
        if b"* 4 EXISTS\r\n" in unt:
            return unt
        return None
    unt = wait_for(counts)
    assert unt, "no EXISTS after the delivery"
    i = unt.index(b"* 4 EXISTS\r\n")
    assert unt[i + 1] == b"* 1 RECENT\r\n", unt
    unt, t = a.ok("FETCH 1:* (FLAGS)")
    assert [b"\\Recent" in u for u in unt if b" FETCH " in u] == \
        [False, False, False, True], unt
    unt, t = c.ok("STATUS INBOX (RECENT)")
    assert b"RECENT 0" in unt[0], unt
    a.close()
    c.close()


def test_fetch_numbers_and_flags_same_text_both_paths(pr):
    """FETCH of numbers and flags only is formatted in place; with any
    other item it goes through the general path: same text. More distinct
    flag sets than the formatter keeps at once (8)."""
    a, = sessions(pr, 1)
    for i in range(24):
        kws = ["$K%d" % k for k in range(4) if i & (1 << k)]
        sys_ = ["\\Seen"] * (i % 2) + ["\\Answered"] * (i % 3 == 0) + \
            ["\\Draft"] * (i % 5 == 0)
        append(a, msg("f%d" % i, body="y" * (i * 7) + "\r\n"),
               flags="(%s)" % " ".join(sys_ + kws) if sys_ + kws else "")
    a.ok("SELECT INBOX")
    a.ok("STORE 3,9 +FLAGS.SILENT (\\Flagged)")
    for items in ("UID FLAGS", "FLAGS RFC822.SIZE UID MODSEQ", "FLAGS FLAGS UID"):
        fast = fetch_lines(a.ok("FETCH 1:* (%s)" % items)[0])
        slow = fetch_lines(a.ok("FETCH 1:* (%s INTERNALDATE)" % items)[0])
        assert len(fast) == 24
        for k in fast:
            assert fast[k] == re.sub(rb' INTERNALDATE "[^"]*"', b"", slow[k]), (items, k)
    fl = fetch_lines(a.ok("FETCH 1:* (UID FLAGS)")[0])
    for k, line in fl.items():
        i = k - 1
        flags = set(re.search(rb"FLAGS \(([^)]*)\)", line).group(1).split())
        want = {b"$K%d" % b for b in range(4) if i & (1 << b)} | {b"\\Recent"}
        want |= {b"\\Seen"} if i % 2 else set()
        want |= {b"\\Answered"} if i % 3 == 0 else set()
        want |= {b"\\Draft"} if i % 5 == 0 else set()
        want |= {b"\\Flagged"} if k in (3, 9) else set()
        assert flags == want, (k, line)
    a.close()


def test_flag_changes_elsewhere_told_exactly(pr):
    a, b, c = sessions(pr, 3)
    for i in range(2):
        append(b, msg("c%d" % i))
    a.ok("SELECT INBOX")
    c.ok("ENABLE CONDSTORE")
    c.ok("SELECT INBOX")
    b.ok("SELECT INBOX")
    b.ok("STORE 2 +FLAGS.SILENT (\\Flagged)")

    def changed(r, cmd="NOOP"):
        return wait_for(lambda: [u for u in r.ok(cmd)[0] if b" FETCH " in u])
    assert changed(a) == [b"* 2 FETCH (FLAGS (\\Flagged \\Recent))\r\n"]
    got = changed(c)
    assert len(got) == 1 and re.match(
        rb"\* 2 FETCH \(UID 2 FLAGS \(\\Flagged\) MODSEQ \(\d+\)\)\r\n$", got[0]), got
    b.ok("STORE 1 +FLAGS.SILENT (\\Seen)")
    # a UID command: the FETCH carries the UID (RFC 3501 §7.4.2)
    got = wait_for(lambda: [u for u in a.ok("UID SEARCH ALL")[0] if b" FETCH " in u])
    assert got == [b"* 1 FETCH (UID 1 FLAGS (\\Seen \\Recent))\r\n"], got
    for r in (a, b, c):
        r.close()
