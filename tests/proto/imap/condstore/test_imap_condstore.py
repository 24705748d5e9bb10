"""CONDSTORE and QRESYNC (RFC 7162) end to end with imaplib: HIGHESTMODSEQ
on SELECT/EXAMINE/STATUS, the MODSEQ fetch item, CHANGEDSINCE, conditional
STORE with [MODIFIED], SEARCH MODSEQ, ENABLE, QRESYNC resync after another
session expunged and changed flags, VANISHED, CLOSED."""
import re

from lib import imap_login as client, new_user
from lib.imap import (imaplib_caps as caps, imaplib_fill as fill, imaplib_ok as ok,
                      imaplib_raw as raw, module_instance, modseq_of)

imapsrv = module_instance("imapsrv")


def hms(lines):
    m = re.search(r"\[HIGHESTMODSEQ (\d+)\]", " ".join(lines))
    assert m, lines
    return int(m.group(1))


def test_capabilities_only_after_login(imapsrv):
    import imaplib
    m = imaplib.IMAP4("127.0.0.1", imapsrv.port("imap"))
    assert "CONDSTORE" not in {c.upper() for c in m.capabilities}
    m.logout()
    m = client(imapsrv, new_user(imapsrv))
    assert {"CONDSTORE", "QRESYNC"} <= caps(m)
    m.logout()


def test_highestmodseq_everywhere(imapsrv):
    m = client(imapsrv, new_user(imapsrv))
    fill(m, 2)
    lines, t = ok(m, "SELECT INBOX")
    h = hms(lines)
    assert h > 0
    # without CONDSTORE on, FETCH FLAGS carries no MODSEQ
    lines, t = ok(m, "FETCH 1:* (FLAGS)")
    assert not any("MODSEQ" in x for x in lines), lines
    lines, t = ok(m, "STATUS Drafts (HIGHESTMODSEQ MESSAGES)")
    st = [x for x in lines if x.startswith("* STATUS")]
    assert re.search(r"HIGHESTMODSEQ \d+ MESSAGES 0\)", st[0]), lines
    # STATUS (HIGHESTMODSEQ) enables CONDSTORE (RFC 7162 §3.1)
    assert lines[0] == "* OK [HIGHESTMODSEQ %d] Highest" % h, lines
    lines, t = ok(m, "FETCH 1 (FLAGS)")
    assert "MODSEQ" in lines[0], lines
    lines, t = ok(m, "EXAMINE Drafts")
    assert "[CLOSED]" in lines[0], lines       # the implicit close comes first
    hms(lines)
    m.logout()


def test_fetch_modseq_store_and_changedsince(imapsrv):
    m = client(imapsrv, new_user(imapsrv))
    fill(m, 3)
    lines, t = ok(m, "SELECT INBOX (CONDSTORE)")
    h0 = hms(lines)
    lines, t = ok(m, "FETCH 1:* (UID MODSEQ)")
    mods = modseq_of(lines)
    assert len(mods) == 3 and max(mods.values()) <= h0
    # CONDSTORE is on: STORE reports MODSEQ beside FLAGS
    lines, t = ok(m, "STORE 2 +FLAGS (\\Seen)")
    new = modseq_of(lines)[2]
    assert new > h0
    # FETCH FLAGS now comes with MODSEQ too
    lines, t = ok(m, "FETCH 2 (FLAGS)")
    assert "MODSEQ (%d)" % new in lines[0], lines
    # CHANGEDSINCE returns only message 2, with MODSEQ added
    lines, t = ok(m, "FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % h0)
    f = [x for x in lines if "FETCH" in x]
    assert len(f) == 1 and f[0].startswith("* 2 FETCH") and "MODSEQ" in f[0], lines
    lines, t = ok(m, "UID FETCH 1:* (FLAGS) (CHANGEDSINCE 0)")
    assert len([x for x in lines if "FETCH" in x]) == 3
    # STATUS agrees with the new highest modseq
    lines, t = ok(m, "STATUS INBOX (HIGHESTMODSEQ)")
    assert "HIGHESTMODSEQ %d" % new in lines[0], lines
    # modifier syntax errors are BAD
    for bad in ["FETCH 1 (FLAGS) (CHANGEDSINCE)", "FETCH 1 (FLAGS) (CHANGEDSINCE x)",
                "FETCH 1 (FLAGS) (FOO 1)", "FETCH 1 (FLAGS) (CHANGEDSINCE 1 VANISHED)"]:
        typ, lines, t = raw(m, bad)
        assert typ == "BAD", (bad, t)
    m.logout()


def test_unchangedsince_conflicts(imapsrv):
    user = new_user(imapsrv)
    a = client(imapsrv, user)
    b = client(imapsrv, user)
    fill(a, 3)
    lines, t = ok(a, "SELECT INBOX (CONDSTORE)")
    h0 = hms(lines)
    ok(b, "SELECT INBOX")
    ok(b, "STORE 2 +FLAGS (\\Flagged)")        # another session changes 2
    lines, t = ok(a, "STORE 1:3 (UNCHANGEDSINCE %d) +FLAGS (\\Seen)" % h0)
    assert "[MODIFIED 2]" in t, t
    mods = modseq_of(lines)
    assert 1 in mods and 3 in mods, lines
    # message 2 was not changed by the failed conditional store
    lines, t = ok(b, "FETCH 2 (FLAGS)")
    assert "\\Seen" not in lines[0], lines
    # UID STORE reports UIDs; UNCHANGEDSINCE 0 always fails
    lines, t = ok(a, "UID SEARCH ALL")
    us = lines[-1].split()[2:]
    lines, t = ok(a, "UID STORE %s (UNCHANGEDSINCE 0) +FLAGS (\\Answered)" % us[0])
    assert "[MODIFIED %s]" % us[0] in t, t
    # a passing condition with .SILENT still reports the new MODSEQ
    lines, t = ok(a, "FETCH 3 (MODSEQ)")
    cur = modseq_of(lines)[3]
    lines, t = ok(a, "STORE 3 (UNCHANGEDSINCE %d) +FLAGS.SILENT (\\Draft)" % cur)
    assert "MODIFIED" not in t
    f = [x for x in lines if x.startswith("* 3 FETCH")]
    assert f and "MODSEQ" in f[0] and "FLAGS" not in f[0], lines
    typ, lines, t = raw(a, "STORE 1 (UNCHANGEDSINCE x) +FLAGS (\\Seen)")
    assert typ == "BAD"
    a.logout()
    b.logout()


def test_search_modseq(imapsrv):
    m = client(imapsrv, new_user(imapsrv))
    fill(m, 3)
    ok(m, "SELECT INBOX")
    lines, t = ok(m, "STORE 3 +FLAGS (\\Seen)")
    lines, t = ok(m, "FETCH 3 (MODSEQ)")
    new = modseq_of(lines)[3]
    # the first CONDSTORE enabling command in the selected state reports
    # HIGHESTMODSEQ (RFC 7162 §3.1), once
    assert lines[0] == "* OK [HIGHESTMODSEQ %d] Highest" % new, lines
    lines, t = ok(m, "FETCH 3 (MODSEQ)")
    assert not any("HIGHESTMODSEQ" in x for x in lines), lines
    lines, t = ok(m, "SEARCH MODSEQ %d" % new)
    assert "* SEARCH 3 (MODSEQ %d)" % new in lines, lines
    lines, t = ok(m, 'SEARCH MODSEQ "/flags/\\\\seen" all %d' % new)
    assert "* SEARCH 3 (MODSEQ %d)" % new in lines, lines
    lines, t = ok(m, "SEARCH MODSEQ %d" % (new + 100))
    assert "* SEARCH" in lines, lines                  # nothing: no (MODSEQ)
    lines, t = ok(m, "UID SEARCH RETURN (COUNT MAX) MODSEQ 1")
    assert re.search(r"\* ESEARCH \(TAG \"\w+\"\) UID MAX \d+ COUNT 3 MODSEQ %d" % new,
                     lines[0]), lines
    # from now on flag FETCHes caused by STORE carry UID and MODSEQ
    lines, t = ok(m, "STORE 1 +FLAGS (\\Draft)")
    assert re.match(r"\* 1 FETCH \(UID 1 FLAGS \(\\Draft[^)]*\) MODSEQ \(\d+\)\)$", lines[0]), lines
    lines, t = ok(m, "STORE 1 -FLAGS (\\Draft)")
    m.logout()


def test_enable(imapsrv):
    m = client(imapsrv, new_user(imapsrv))
    lines, t = ok(m, "ENABLE CONDSTORE")
    assert lines == ["* ENABLED CONDSTORE"], lines
    lines, t = ok(m, "ENABLE QRESYNC")
    assert lines == ["* ENABLED QRESYNC"], lines
    lines, t = ok(m, "ENABLE QRESYNC CONDSTORE")
    assert lines == ["* ENABLED"], lines
    fill(m, 1)
    ok(m, "SELECT INBOX")
    lines, t = ok(m, "FETCH 1 (FLAGS)")
    assert "MODSEQ" in lines[0], lines
    m.logout()


def test_qresync_select_without_enable_is_bad(imapsrv):
    m = client(imapsrv, new_user(imapsrv))
    typ, lines, t = raw(m, "SELECT INBOX (QRESYNC (1 1))")
    assert typ == "BAD", t
    ok(m, "ENABLE QRESYNC")
    for bad in ["SELECT INBOX (QRESYNC)", "SELECT INBOX (QRESYNC (1))",
                "SELECT INBOX (QRESYNC (x 1))", "SELECT INBOX (FOO)",
                "SELECT INBOX (QRESYNC (1 1 1:*))", "SELECT INBOX (QRESYNC (1 1 1:5 (1)))"]:
        typ, lines, t = raw(m, bad)
        assert typ == "BAD", (bad, t)
    m.logout()


def test_qresync_resync_after_other_session(imapsrv):
    user = new_user(imapsrv)
    a = client(imapsrv, user)
    fill(a, 5)
    ok(a, "ENABLE QRESYNC")
    lines, t = ok(a, "SELECT INBOX")
    validity = int(re.search(r"UIDVALIDITY (\d+)", " ".join(lines)).group(1))
    h0 = hms(lines)
    lines, t = ok(a, "UID SEARCH ALL")
    us = [int(x) for x in lines[-1].split()[2:]]
    ok(a, "UNSELECT")
    # another session expunges 2 and 4 and flags 3 while a is away
    b = client(imapsrv, user)
    ok(b, "SELECT INBOX")
    ok(b, "UID STORE %d,%d +FLAGS (\\Deleted)" % (us[1], us[3]))
    ok(b, "EXPUNGE")
    ok(b, "UID STORE %d +FLAGS (\\Answered)" % us[2])
    b.logout()
    lines, t = ok(a, "SELECT INBOX (QRESYNC (%d %d))" % (validity, h0))
    assert "* VANISHED (EARLIER) %d,%d" % (us[1], us[3]) in lines, lines
    f = [x for x in lines if "FETCH" in x]
    assert len(f) == 1 and "UID %d" % us[2] in f[0] and "\\Answered" in f[0] \
        and "MODSEQ" in f[0], lines
    assert "EXPUNGE" not in " ".join(lines)
    # known-uids limit what is reported; the seq-match hint is accepted
    lines, t = ok(a, "SELECT INBOX (QRESYNC (%d %d %d:%d (1:2 %d,%d)))" %
                  (validity, h0, us[0], us[1], us[0], us[2]))
    assert lines[0].startswith("* OK [CLOSED]"), lines
    assert "* VANISHED (EARLIER) %d" % us[1] in lines, lines
    assert not any("FETCH" in x for x in lines), lines
    # a wrong UIDVALIDITY: a plain SELECT, no VANISHED
    lines, t = ok(a, "SELECT INBOX (QRESYNC (%d %d))" % (validity + 1, h0))
    assert not any("VANISHED" in x or "FETCH" in x for x in lines), lines
    # UID FETCH ... (CHANGEDSINCE n VANISHED)
    lines, t = ok(a, "UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % h0)
    assert lines[0] == "* VANISHED (EARLIER) %d,%d" % (us[1], us[3]), lines
    assert len([x for x in lines if "FETCH" in x]) == 1, lines
    lines, t = ok(a, "UID FETCH %d (FLAGS) (CHANGEDSINCE %d VANISHED)" % (us[3], h0))
    assert lines == ["* VANISHED (EARLIER) %d" % us[3]], lines
    # with the saved result "$" (RFC 5182) as the UID set
    ok(a, "UID SEARCH RETURN (SAVE) UID %d:%d" % (us[2], us[4]))
    lines, t = ok(a, "UID FETCH $ (FLAGS) (CHANGEDSINCE %d VANISHED)" % h0)
    assert len(lines) == 1 and "UID %d " % us[2] in lines[0], lines  # 4 is not in $
    typ, lines, t = raw(a, "FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % h0)
    assert typ == "BAD"                  # VANISHED is for UID FETCH only
    a.logout()


def test_vanished_instead_of_expunge(imapsrv):
    user = new_user(imapsrv)
    a = client(imapsrv, user)
    b = client(imapsrv, user)
    fill(a, 4)
    ok(a, "ENABLE QRESYNC")
    ok(a, "SELECT INBOX")
    lines, t = ok(a, "UID SEARCH ALL")
    us = [int(x) for x in lines[-1].split()[2:]]
    ok(a, "STORE 1 +FLAGS (\\Deleted)")
    lines, t = ok(a, "EXPUNGE")
    assert [x for x in lines if "RECENT" not in x] == ["* VANISHED %d" % us[0]], lines
    # another session's expunge and flag change reach a as VANISHED and
    # FETCH with MODSEQ
    ok(b, "SELECT INBOX")
    ok(b, "UID STORE %d,%d +FLAGS (\\Deleted)" % (us[2], us[3]))
    ok(b, "UID EXPUNGE %d:%d" % (us[2], us[3]))
    ok(b, "UID STORE %d +FLAGS (\\Flagged)" % us[1])
    lines, t = ok(a, "NOOP")
    assert "* VANISHED %d:%d" % (us[2], us[3]) in lines, lines
    f = [x for x in lines if "FETCH" in x]
    assert f and "\\Flagged" in f[0] and "MODSEQ" in f[0], lines
    # a session without QRESYNC still gets EXPUNGE
    ok(a, "STORE 1 +FLAGS (\\Deleted)")
    ok(a, "EXPUNGE")
    lines, t = ok(b, "NOOP")
    assert "* 1 EXPUNGE" in lines, lines
    a.logout()
    b.logout()


def test_long_modified_set(imapsrv):
    """A [MODIFIED] set longer than a normal reply line is sent whole."""
    user = new_user(imapsrv)
    a = client(imapsrv, user)
    b = client(imapsrv, user)
    # 600 APPENDs pipelined with LITERAL+ literals
    msg = b"Subject: x\r\n\r\nbody\r\n"
    a.send(b"".join(b"P%d APPEND INBOX {%d+}\r\n%s\r\n" % (i, len(msg), msg)
                    for i in range(600)))
    done = 0
    while done < 600:
        line = a.readline()
        assert not line.startswith(b"P") or b" OK " in line, line
        done += line.startswith(b"P")
    lines, t = ok(a, "SELECT INBOX (CONDSTORE)")
    h0 = hms(lines)
    ok(b, "SELECT INBOX")
    odd = ",".join(str(i) for i in range(1, 601, 2))
    ok(b, "STORE %s +FLAGS.SILENT (\\Flagged)" % odd)
    lines, t = ok(a, "STORE 1:600 (UNCHANGEDSINCE %d) +FLAGS.SILENT (\\Seen)" % h0)
    got = re.search(r"\[MODIFIED ([\d,:]+)\]", t).group(1)
    assert got == odd, t[:200]
    assert len(got) > 1000
    lines, t = ok(a, "SEARCH SEEN")
    assert lines[-1].split()[2:] == [str(i) for i in range(2, 601, 2)]
    a.logout()
    b.logout()


def test_vanished_during_idle(imapsrv):
    user = new_user(imapsrv)
    a = client(imapsrv, user)
    b = client(imapsrv, user)
    fill(a, 3)
    ok(a, "ENABLE QRESYNC")
    ok(a, "SELECT INBOX")
    lines, t = ok(a, "UID SEARCH ALL")
    us = [int(x) for x in lines[-1].split()[2:]]
    a.send(b"I1 IDLE\r\n")
    assert a.readline().startswith(b"+ ")
    ok(b, "SELECT INBOX")
    ok(b, "UID STORE %d +FLAGS (\\Deleted \\Seen)" % us[1])
    got = []
    while not any(x.startswith(b"* VANISHED") for x in got):
        got.append(a.readline().rstrip(b"\r\n"))
        if len(got) == 1:
            # the flag change first, with UID and MODSEQ
            assert re.match(rb"\* 2 FETCH \(UID %d FLAGS \(.*\) MODSEQ \(\d+\)\)$" % us[1],
                            got[0]), got
            ok(b, "EXPUNGE")
    assert got[-1] == b"* VANISHED %d" % us[1], got
    a.send(b"DONE\r\n")
    line = a.readline()
    while not line.startswith(b"I1 "):
        line = a.readline()
    assert line.startswith(b"I1 OK"), line
    a.logout()
    b.logout()
