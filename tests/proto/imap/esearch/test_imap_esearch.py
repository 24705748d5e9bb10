"""ESEARCH (RFC 4731) and SEARCHRES (RFC 5182) end to end with imaplib:
RETURN (MIN MAX ALL COUNT), UID in the reply, ALL as a sequence set, the
saved result "$" in FETCH/STORE/COPY/MOVE/SEARCH and their UID forms."""
import re

from lib import imap_login as client, new_user
from lib.imap import (imaplib_caps as caps, imaplib_fill as fill, imaplib_ok as ok,
                      imaplib_raw as raw, module_instance)

imapsrv = module_instance("imapsrv")


def esearch(lines):
    es = [x for x in lines if x.startswith("* ESEARCH")]
    assert len(es) == 1, lines
    return es[0]


def test_esearch_return_options(imapsrv):
    m = client(imapsrv, new_user(imapsrv))
    assert {"ESEARCH", "SEARCHRES"} <= caps(m)
    fill(m, 5)
    m.select("INBOX")
    m.store("2,4", "+FLAGS", "(\\Flagged)")
    lines, t = ok(m, "SEARCH RETURN (MIN MAX COUNT ALL) FLAGGED")
    tag = t.split()[0]
    assert esearch(lines) == '* ESEARCH (TAG "%s") MIN 2 MAX 4 ALL 2,4 COUNT 2' % tag
    lines, t = ok(m, "SEARCH RETURN () ALL")
    assert esearch(lines).endswith(" ALL 1:5")
    lines, t = ok(m, "UID SEARCH RETURN (COUNT) ALL")
    assert re.search(r'\(TAG "\w+"\) UID COUNT 5$', esearch(lines)), lines
    lines, t = ok(m, "UID SEARCH RETURN (MIN MAX) UNFLAGGED")
    uids = [int(x) for x in ok(m, "UID SEARCH ALL")[0][-1].split()[2:]]
    assert esearch(lines).endswith("UID MIN %d MAX %d" % (uids[0], uids[4]))
    # nothing found: only COUNT is given
    lines, t = ok(m, "SEARCH RETURN (MIN MAX ALL COUNT) SUBJECT nothing-here")
    assert esearch(lines).endswith(") COUNT 0"), lines
    lines, t = ok(m, "SEARCH RETURN (MIN) SUBJECT nothing-here")
    assert re.match(r'\* ESEARCH \(TAG "\w+"\)$', esearch(lines)), lines
    # CHARSET after RETURN, and plain SEARCH is unchanged
    lines, t = ok(m, "SEARCH RETURN (COUNT) CHARSET UTF-8 ALL")
    assert esearch(lines).endswith("COUNT 5")
    lines, t = ok(m, "SEARCH FLAGGED")
    assert lines[-1] == "* SEARCH 2 4"
    for bad in ["SEARCH RETURN (FOO) ALL", "SEARCH RETURN ALL", "SEARCH RETURN (MIN)"]:
        typ, lines, t = raw(m, bad)
        assert typ == "BAD", (bad, t)
    m.logout()


def test_searchres_across_commands(imapsrv):
    m = client(imapsrv, new_user(imapsrv))
    fill(m, 5)
    m.select("INBOX")
    lines, t = ok(m, 'SEARCH RETURN (SAVE) OR SUBJECT "msg 2" SUBJECT "msg 4"')
    assert not any("SEARCH" in x for x in lines), lines
    lines, t = ok(m, "FETCH $ (UID)")
    assert [x.split()[1] for x in lines if "FETCH" in x] == ["2", "4"], lines
    lines, t = ok(m, "UID FETCH $ (FLAGS)")
    assert [x.split()[1] for x in lines if "FETCH" in x] == ["2", "4"], lines
    ok(m, "STORE $ +FLAGS (\\Flagged)")
    lines, t = ok(m, "SEARCH FLAGGED")
    assert lines[-1] == "* SEARCH 2 4"
    lines, t = ok(m, "SEARCH $ SUBJECT \"msg 4\"")
    assert lines[-1] == "* SEARCH 4"
    lines, t = ok(m, "UID SEARCH NOT $")
    assert len(lines[-1].split()) == 5
    lines, t = ok(m, "UID SEARCH UID $")
    assert len(lines[-1].split()) == 4
    ok(m, "COPY $ Archive")
    typ, data = m.status("Archive", "(MESSAGES)")
    assert b"MESSAGES 2" in data[0]
    # SAVE with other options still answers; MIN/MAX alone save only those
    lines, t = ok(m, "SEARCH RETURN (SAVE MIN MAX) ALL")
    assert esearch(lines).endswith("MIN 1 MAX 5")
    lines, t = ok(m, "FETCH $ (UID)")
    assert [x.split()[1] for x in lines if "FETCH" in x] == ["1", "5"], lines
    lines, t = ok(m, "SEARCH RETURN (SAVE COUNT) UNFLAGGED")
    assert esearch(lines).endswith("COUNT 3")
    # an expunged message drops out of $; MOVE by $
    ok(m, "STORE 1 +FLAGS (\\Deleted)")
    ok(m, "EXPUNGE")
    lines, t = ok(m, "FETCH $ (UID)")
    assert [x.split()[1] for x in lines if "FETCH" in x] == ["2", "4"], lines
    ok(m, "UID MOVE $ Trash")
    typ, data = m.status("Trash", "(MESSAGES)")
    assert b"MESSAGES 2" in data[0]
    # UID EXPUNGE $ removes only the saved ones
    ok(m, "STORE 1:* +FLAGS (\\Deleted)")
    lines, t = ok(m, "SEARCH RETURN (SAVE MAX) ALL")
    lines, t = ok(m, "UID EXPUNGE $")
    assert [x for x in lines if "EXPUNGE" in x] == ["* 2 EXPUNGE"], lines
    typ, data = m.status("INBOX", "(MESSAGES)")
    assert b"MESSAGES 1" in data[0]
    # a failed SEARCH with SAVE empties $; a new SELECT forgets it
    ok(m, "SEARCH RETURN (SAVE) ALL")
    typ, lines, t = raw(m, "SEARCH RETURN (SAVE) FOO")
    assert typ == "BAD"
    lines, t = ok(m, "FETCH $ (UID)")
    assert not any("FETCH" in x for x in lines), lines
    ok(m, "SEARCH RETURN (SAVE) ALL")
    m.select("INBOX")
    lines, t = ok(m, "FETCH $ (UID)")
    assert not any("FETCH" in x for x in lines), lines
    m.logout()
