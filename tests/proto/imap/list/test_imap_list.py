"""LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819), SPECIAL-USE and
CREATE-SPECIAL-USE (RFC 6154), CHILDREN (RFC 3348) end to end with
imaplib. New users get INBOX, Drafts, Sent, Trash, Junk and Archive (with
special-use), all subscribed."""
import re

from lib import imap_login as client, new_user
from lib.imap import (imaplib_caps as caps, imaplib_fill as fill, imaplib_ok as ok,
                      imaplib_raw as raw, module_instance)

imapsrv = module_instance("imapsrv")


def lst(m, cmd):
    lines, t = ok(m, cmd)
    return lines


def by_name(lines):
    """{name: (attrs, rest)} of the LIST lines."""
    out = {}
    for x in lines:
        f = re.match(r'\* LIST \(([^)]*)\) "/" ("[^"]*"|\S+)(.*)$', x)
        if f:
            out[f.group(2).strip('"')] = (set(f.group(1).split()), f.group(3).strip())
    return out


def test_capabilities(imapsrv):
    m = client(imapsrv, new_user(imapsrv))
    assert {"LIST-EXTENDED", "LIST-STATUS", "SPECIAL-USE", "CREATE-SPECIAL-USE",
            "CHILDREN"} <= caps(m)
    m.logout()


def test_special_use_in_plain_and_extended_list(imapsrv):
    m = client(imapsrv, new_user(imapsrv))
    plain = by_name(lst(m, 'LIST "" "*"'))
    assert "\\Sent" in plain["Sent"][0] and "\\Drafts" in plain["Drafts"][0]
    assert "\\HasNoChildren" in plain["INBOX"][0]
    su = by_name(lst(m, 'LIST (SPECIAL-USE) "" "*"'))
    assert set(su) == {"Drafts", "Sent", "Trash", "Junk", "Archive"}, su
    ret = by_name(lst(m, 'LIST "" "*" RETURN (SPECIAL-USE)'))
    assert "\\Trash" in ret["Trash"][0] and "INBOX" in ret
    m.logout()


def test_subscribed_selection_and_nonexistent(imapsrv):
    m = client(imapsrv, new_user(imapsrv))
    m.create("Gone")
    m.subscribe("Gone")
    m.delete("Gone")
    m.create("Unsub")
    got = by_name(lst(m, 'LIST (SUBSCRIBED) "" "*"'))
    assert "Unsub" not in got and "INBOX" in got
    assert all("\\Subscribed" in a for a, r in got.values()), got
    assert "\\NonExistent" in got["Gone"][0], got
    # RETURN (SUBSCRIBED) marks subscribed ones among all mailboxes
    got = by_name(lst(m, 'LIST "" "*" RETURN (SUBSCRIBED)'))
    assert "\\Subscribed" in got["Sent"][0] and "\\Subscribed" not in got["Unsub"][0]
    assert "Gone" not in got
    m.logout()


def test_recursivematch_childinfo(imapsrv):
    m = client(imapsrv, new_user(imapsrv))
    m.create("Top/Sub")
    m.subscribe("Top/Sub")
    got = by_name(lst(m, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"'))
    assert "Top" in got and 'CHILDINFO' in got["Top"][1] and "SUBSCRIBED" in got["Top"][1], got
    assert "\\Subscribed" not in got["Top"][0]
    got = by_name(lst(m, 'LIST (SUBSCRIBED) "" "%"'))
    assert "Top" not in got
    typ, lines, t = raw(m, 'LIST (RECURSIVEMATCH) "" "*"')
    assert typ == "BAD", t
    m.logout()


def test_multiple_patterns_and_errors(imapsrv):
    m = client(imapsrv, new_user(imapsrv))
    got = by_name(lst(m, 'LIST "" ("INBOX" "Sent" "Sen*")'))
    assert set(got) == {"INBOX", "Sent"}, got
    got = by_name(lst(m, 'LIST () "" "inbox"'))
    assert set(got) == {"INBOX"}
    for bad in ['LIST (FOO) "" "*"', 'LIST "" "*" RETURN (FOO)',
                'LIST "" "*" RETURN', 'LIST "" "*" RETURN (STATUS ())',
                'LIST "" "*" RETURN (STATUS (BOGUS))', 'LIST "" ()',
                'LIST "" "*" EXTRA (x)']:
        typ, lines, t = raw(m, bad)
        assert typ == "BAD", (bad, t)
    m.logout()


def test_children(imapsrv):
    m = client(imapsrv, new_user(imapsrv))
    m.create("Parent/Child")
    got = by_name(lst(m, 'LIST "" "Parent*"'))
    assert "\\HasChildren" in got["Parent"][0] and "\\HasNoChildren" in got["Parent/Child"][0]
    got = by_name(lst(m, 'LIST "" "Parent*" RETURN (CHILDREN)'))
    assert "\\HasChildren" in got["Parent"][0] and "\\HasNoChildren" in got["Parent/Child"][0]
    m.logout()


def test_list_status(imapsrv):
    m = client(imapsrv, new_user(imapsrv))
    fill(m, 2)
    m.select("INBOX")
    m.store("1", "+FLAGS", "(\\Seen)")
    m.close()
    lines = lst(m, 'LIST "" "*" RETURN (STATUS (MESSAGES UNSEEN UIDNEXT HIGHESTMODSEQ SIZE))')
    st = [x for x in lines if x.startswith("* STATUS")]
    assert len(st) == 6, lines
    i = lines.index(next(x for x in lines if x.startswith("* LIST") and x.endswith("\"INBOX\"")))
    assert lines[i + 1].startswith("* STATUS \"INBOX\" ("), lines
    assert re.search(r"MESSAGES 2 UIDNEXT 3 UNSEEN 1 SIZE \d+ HIGHESTMODSEQ \d+\)", lines[i + 1]), \
        lines[i + 1]
    # no STATUS for a \NonExistent mailbox
    m.subscribe("Nowhere")
    lines = lst(m, 'LIST (SUBSCRIBED) "" "Nowhere" RETURN (STATUS (MESSAGES))')
    assert len(lines) == 1 and "\\NonExistent" in lines[0], lines
    m.logout()


def test_create_special_use(imapsrv):
    m = client(imapsrv, new_user(imapsrv))
    lines, t = ok(m, 'CREATE "Sent Items" (USE (\\Sent))')
    got = by_name(lst(m, 'LIST "" "Sent Items"'))
    assert "\\Sent" in got["Sent Items"][0], got
    lines, t = ok(m, 'CREATE "A/B" (USE (\\Archive \\Flagged))')
    got = by_name(lst(m, 'LIST "" "A*"'))
    assert {"\\Archive", "\\Flagged"} <= got["A/B"][0] and "\\HasChildren" in got["A"][0], got
    typ, lines, t = raw(m, 'CREATE "Weird" (USE (\\NoSuchUse))')
    assert typ == "NO" and "[USEATTR]" in t, t
    typ, lines, t = raw(m, 'CREATE "Weird" (FOO (\\Sent))')
    assert typ == "BAD", t
    typ, lines, t = raw(m, 'CREATE "Sent Items" (USE (\\Sent))')
    assert typ == "NO" and "ALREADYEXISTS" in t, t
    typ, lines, t = raw(m, 'CREATE INBOX (USE (\\Sent))')
    assert typ == "NO"
    got = by_name(lst(m, 'LIST (SPECIAL-USE) "" "*" RETURN (STATUS (MESSAGES))'))
    assert "Sent Items" in got and "Weird" not in got
    m.logout()


def test_client_list_commands(imapsrv):
    """The exact LIST forms of Thunderbird (DiscoverMailboxList), K-9
    (RealImapStore.kt) and Evolution (camel-imapx-server.c)."""
    m = client(imapsrv, new_user(imapsrv))
    m.create("Work/2026")
    fill(m, 3)
    # Thunderbird with LIST-EXTENDED and SPECIAL-USE
    got = by_name(lst(m, 'list (subscribed) "" "*" return (special-use)'))
    assert "\\Sent" in got["Sent"][0] and "\\Subscribed" in got["INBOX"][0], got
    assert "Work/2026" not in got              # created, not subscribed
    got = by_name(lst(m, 'list "" "INBOX"'))
    assert list(got) == ["INBOX"]
    # K-9
    got = by_name(lst(m, 'LIST "" "*" RETURN (SPECIAL-USE)'))
    assert {"INBOX", "Drafts", "Sent", "Trash", "Junk", "Archive", "Work",
            "Work/2026"} == set(got), got
    # Evolution
    lines = lst(m, 'LIST "" "*" RETURN (CHILDREN SUBSCRIBED STATUS (MESSAGES UNSEEN'
                   ' UIDVALIDITY UIDNEXT HIGHESTMODSEQ) SPECIAL-USE)')
    got = by_name(lines)
    assert "\\HasChildren" in got["Work"][0] and "\\Subscribed" not in got["Work"][0]
    st = {re.match(r'\* STATUS "?([^"(]*)"? \(', x).group(1).strip(): x
          for x in lines if x.startswith("* STATUS")}
    assert set(st) == set(got), (st, got)
    assert re.search(r"MESSAGES 3 UIDNEXT 4 UIDVALIDITY \d+ UNSEEN 3 HIGHESTMODSEQ \d+\)$",
                     st["INBOX"]), st["INBOX"]
    m.logout()


def test_noselect_parent_and_special_use_recursivematch(imapsrv):
    m = client(imapsrv, new_user(imapsrv))
    m.create("Old/Keep")
    lines, t = ok(m, 'CREATE "Old/Keep/Bin" (USE (\\Trash))')
    m.delete("Old")                            # its children stay
    got = by_name(lst(m, 'LIST () "" "Old*"'))
    assert "\\Noselect" in got["Old"][0] and "\\HasChildren" in got["Old"][0], got
    got = by_name(lst(m, 'LIST (SPECIAL-USE RECURSIVEMATCH) "" "%"'))
    assert "Old" in got and '"SPECIAL-USE"' in got["Old"][1], got
    assert "\\NonExistent" in got["Old"][0]
    assert "Trash" in got and "CHILDINFO" not in got["Trash"][1]
    m.logout()


def test_limits(imapsrv):
    m = client(imapsrv, new_user(imapsrv))
    pats = " ".join('"p%d"' % i for i in range(33))
    typ, lines, t = raw(m, 'LIST "" (%s)' % pats)
    assert typ == "BAD", t
    pats = " ".join('"p%d"' % i for i in range(31)) + ' "INBOX"'
    got = by_name(lst(m, 'LIST "" (%s)' % pats))
    assert list(got) == ["INBOX"]
    # a pathological pattern is answered quickly (no backtracking)
    got = lst(m, 'LIST "" "%s"' % ("*%" * 400 + "x"))
    assert got == []
    m.logout()
