"""imapd extensions end to end: capabilities, NAMESPACE, ID, ENABLE,
UNSELECT, UIDPLUS (APPENDUID, COPYUID, UID EXPUNGE), MOVE, STATUS=SIZE and
APPENDLIMIT. (IDLE and COMPRESS=DEFLATE have suites of their own.)"""
import re

from lib import message, new_user
from lib.imap import (TextRaw as Raw, caps_of as caps, module_instance, raw_fill as fill,
                      raw_login as login, two_selected, uids)

LIMIT = 10 * 1024 * 1024            # the harness's max_message_size
imapsrv = module_instance("imapsrv", ("imapd", "smtpd", "pop3d"))


# ---- capabilities --------------------------------------------------------

def test_capabilities_after_login_only(imapsrv):
    user = new_user(imapsrv)
    r = Raw(imapsrv)
    pre = caps(r.greeting.decode())
    assert "ID" in pre and "IDLE" not in pre and "COMPRESS=DEFLATE" not in pre
    r.login(user)
    unt, t = r.ok("CAPABILITY")
    c = caps(unt[0])
    for x in ("IDLE", "NAMESPACE", "ID", "ENABLE", "UNSELECT", "UIDPLUS", "MOVE",
              "COMPRESS=DEFLATE", "STATUS=SIZE", "APPENDLIMIT=%d" % LIMIT):
        assert x in c, (x, c)
    r.close()


# ---- NAMESPACE, ID, ENABLE, UNSELECT ------------------------------------

def test_namespace(imapsrv):
    r = login(imapsrv, new_user(imapsrv))
    unt, t = r.ok("NAMESPACE")
    assert unt == ['* NAMESPACE (("" "/")) NIL NIL'], unt
    unt, t = r.cmd("NAMESPACE extra")
    assert " BAD " in t
    r.close()


def test_id_logged_escaped(imapsrv):
    r = Raw(imapsrv)
    unt, t = r.ok('ID ("name" "Evil\\"Client" "version" "1.0" "os" NIL)')
    assert unt and unt[0].startswith('* ID ("name" "Postroom" "version" "'), unt
    unt, t = r.ok("ID NIL")
    assert unt[0].startswith("* ID (")
    for bad in ('ID ("name")', "ID", 'ID "name"', 'ID (name "x")',
                'ID ("%s" "x")' % ("k" * 31)):
        unt, t = r.cmd(bad)
        assert " BAD " in t, (bad, t)
    r.close()
    log = imapsrv.log("imapd")
    assert 'id name="Evil"Client" version="1.0" os="NIL"' in log, log[-2000:]


def test_enable(imapsrv):
    r = login(imapsrv, new_user(imapsrv))
    unt, t = r.ok("ENABLE X-NO-SUCH-EXTENSION")
    assert unt == ["* ENABLED"], unt
    unt, t = r.cmd("ENABLE")
    assert " BAD " in t
    r.ok("SELECT INBOX")
    unt, t = r.cmd("ENABLE X-FOO")          # RFC 5161: authenticated state only
    assert " BAD " in t
    r.close()


def test_unselect_does_not_expunge(imapsrv):
    user = new_user(imapsrv)
    r = login(imapsrv, user)
    fill(r, 2, to=user)
    r.ok("SELECT INBOX")
    r.ok("STORE 1 +FLAGS (\\Deleted)")
    unt, t = r.ok("UNSELECT")
    assert not any("EXPUNGE" in x for x in unt), unt
    unt, t = r.cmd("FETCH 1 (FLAGS)")
    assert " BAD " in t, "FETCH after UNSELECT"
    unt, t = r.cmd("UNSELECT")
    assert " BAD " in t, "UNSELECT when nothing is selected"
    unt, t = r.ok("STATUS INBOX (MESSAGES)")
    assert "MESSAGES 2" in unt[0], unt
    unt, t = r.ok("SELECT INBOX")
    unt, t = r.ok("FETCH 1 (FLAGS)")
    assert "\\Deleted" in unt[0]
    r.close()


# ---- UIDPLUS -------------------------------------------------------------

def status(r, box, item):
    unt, t = r.ok("STATUS %s (%s)" % (box, item))
    return int(re.search(item + r" (\d+)", unt[0]).group(1))


def test_appenduid(imapsrv):
    user = new_user(imapsrv)
    r = login(imapsrv, user)
    v = status(r, "Drafts", "UIDVALIDITY")
    unt, t = r.append("Drafts", message("draft", to=user), flags="(\\Draft)")
    m = re.match(r"\S+ OK \[APPENDUID (\d+) (\d+)\]", t)
    assert m and int(m.group(1)) == v, t
    uid = int(m.group(2))
    unt, t = r.append("Drafts", message("draft2", to=user))
    assert "[APPENDUID %d %d]" % (v, uid + 1) in t, t
    r.ok("SELECT Drafts")
    unt, t = r.ok("UID FETCH %d (FLAGS)" % uid)
    assert "\\Draft" in unt[0]
    r.close()


def test_copyuid(imapsrv):
    user = new_user(imapsrv)
    r = login(imapsrv, user)
    fill(r, 5, to=user)
    r.ok("SELECT INBOX")
    u = uids(r)
    v = status(r, "Trash", "UIDVALIDITY")
    unt, t = r.ok("UID COPY %d:%d,%d Trash" % (u[0], u[2], u[4]))
    m = re.search(r"\[COPYUID (\d+) (\S+) (\S+)\]", t)
    assert m and int(m.group(1)) == v, t
    assert m.group(2) == "%d:%d,%d" % (u[0], u[2], u[4]), t
    assert m.group(3) == "1:4" or m.group(3).count(":") == 1, t
    unt, t = r.ok("COPY 2 Trash")
    assert re.search(r"\[COPYUID %d %d \d+\]" % (v, u[1]), t), t
    # nothing to copy: OK without COPYUID
    unt, t = r.ok("UID COPY 999 Trash")
    assert "COPYUID" not in t
    unt, t = r.cmd("COPY 1 NoSuchBox")
    assert "[TRYCREATE]" in t
    r.close()


def test_uid_expunge(imapsrv):
    user, a, b = two_selected(imapsrv, 4)
    u = uids(a)
    a.ok("STORE 1:3 +FLAGS.SILENT (\\Deleted)")
    unt, t = a.ok("UID EXPUNGE %d,%d" % (u[1], u[3]))   # u[3] is not \Deleted
    assert [x for x in unt if "EXPUNGE" in x] == ["* 2 EXPUNGE"], unt
    assert uids(a) == [u[0], u[2], u[3]]
    unt, t = a.ok("FETCH 1:* (FLAGS)")
    assert "\\Deleted" in unt[0] and "\\Deleted" in unt[1] and "\\Deleted" not in unt[2]
    unt, t = b.ok("NOOP")
    assert "* 2 EXPUNGE" in unt, unt
    unt, t = a.cmd("UID EXPUNGE")
    assert " BAD " in t
    unt, t = a.cmd("UID EXPUNGE abc")
    assert " BAD " in t
    a.ok("EXAMINE INBOX")
    unt, t = a.cmd("UID EXPUNGE %d" % u[0])
    assert " NO " in t and "READ-ONLY" in t
    a.close()
    b.close()


# ---- MOVE ----------------------------------------------------------------

def test_uid_move_flags_copyuid_and_other_session(imapsrv):
    user, a, b = two_selected(imapsrv, 3)
    u = uids(a)
    a.ok("STORE 2 +FLAGS (\\Flagged \\Seen $Important)")
    v = status(a, "Archive", "UIDVALIDITY")
    unt, t = a.ok("UID MOVE %d Archive" % u[1])
    assert t.split()[1] == "OK", t
    ok = [i for i, x in enumerate(unt) if x.startswith("* OK [COPYUID")]
    ex = [i for i, x in enumerate(unt) if x.endswith("EXPUNGE")]
    assert len(ok) == 1 and ex and ok[0] < ex[0], unt
    m = re.match(r"\* OK \[COPYUID (\d+) (\d+) (\d+)\]", unt[ok[0]])
    assert int(m.group(1)) == v and int(m.group(2)) == u[1], unt
    newuid = int(m.group(3))
    assert [unt[i] for i in ex] == ["* 2 EXPUNGE"], unt
    assert uids(a) == [u[0], u[2]]
    unt, t = b.ok("NOOP")
    assert "* 2 EXPUNGE" in unt, unt
    unt, t = b.ok("EXAMINE Archive")
    unt, t = b.ok("UID FETCH %d (FLAGS)" % newuid)
    assert all(f in unt[0] for f in ("\\Flagged", "\\Seen", "$Important")), unt
    a.close()
    b.close()


def test_move_by_sequence_and_errors(imapsrv):
    user = new_user(imapsrv)
    r = login(imapsrv, user)
    fill(r, 4, to=user)
    r.ok("SELECT INBOX")
    u = uids(r)
    unt, t = r.ok("MOVE 1:2,4 Junk")
    assert any(x.startswith("* OK [COPYUID ") and " %d:%d,%d " % (u[0], u[1], u[3]) in x
               for x in unt), unt
    assert [x for x in unt if x.endswith("EXPUNGE")] == \
        ["* 4 EXPUNGE", "* 2 EXPUNGE", "* 1 EXPUNGE"] or \
        len([x for x in unt if x.endswith("EXPUNGE")]) == 3, unt
    assert uids(r) == [u[2]]
    assert status(r, "Junk", "MESSAGES") == 3
    unt, t = r.cmd("MOVE 1 NoSuchBox")
    assert " NO " in t and "[TRYCREATE]" in t
    unt, t = r.cmd("MOVE 5 Junk")
    assert " BAD " in t
    unt, t = r.ok("UID MOVE 9999 Junk")
    assert not any("EXPUNGE" in x for x in unt)
    r.ok("EXAMINE INBOX")
    unt, t = r.cmd("MOVE 1 Junk")
    assert " NO " in t and "READ-ONLY" in t
    r.close()


# ---- STATUS=SIZE, APPENDLIMIT --------------------------------------------

def test_status_size(imapsrv):
    user = new_user(imapsrv)
    r = login(imapsrv, user)
    assert status(r, "INBOX", "SIZE") == 0
    fill(r, 3, to=user)
    r.append("INBOX", message("lf only", body="a\nb\nc\n", to=user))
    r.ok("SELECT INBOX")
    unt, t = r.ok("FETCH 1:* (RFC822.SIZE)")
    total = sum(int(re.search(r"RFC822\.SIZE (\d+)", x).group(1)) for x in unt)
    r.ok("UNSELECT")
    assert status(r, "INBOX", "SIZE") == total
    unt, t = r.ok("STATUS INBOX (MESSAGES SIZE UNSEEN)")
    assert re.search(r"\(MESSAGES 4 SIZE %d UNSEEN 4\)" % total, unt[0]), unt
    r.close()


def test_appendlimit(imapsrv):
    user = new_user(imapsrv)
    r = login(imapsrv, user)
    unt, t = r.ok("CAPABILITY")
    assert "APPENDLIMIT=%d" % LIMIT in caps(unt[0])
    tag = r.tag()
    r.send("%s APPEND INBOX {%d}\r\n" % (tag, LIMIT + 1))
    unt, t = r.until(tag)
    assert t.startswith(tag + " NO [TOOBIG]"), t
    tag = r.tag()
    body = message("exactly at limit", to=user)
    body += b"x" * (LIMIT - len(body))
    r.send("%s APPEND INBOX {%d}\r\n" % (tag, len(body)))
    assert r.line().startswith(b"+ ")
    r.send(body + b"\r\n")
    unt, t = r.until(tag)
    assert " OK " in t, t
    r.close()


def test_copyuid_too_long_for_one_line_is_left_out(imapsrv):
    """COPY of a set whose COPYUID would not fit a reply line gets a clean OK
    without the code (never a cut one); the copies are all made."""
    user = new_user(imapsrv)
    r = login(imapsrv, user)
    n = 600
    data = b"".join(b"a%d APPEND INBOX {%d+}\r\n%s\r\n" % (i, len(m), m)
                    for i, m in ((i, message("m%d" % i, to=user)) for i in range(n)))
    r.send(data)
    for i in range(n):
        unt, t = r.until("a%d" % i)
        assert " OK " in t, t
    r.ok("SELECT INBOX")
    odd = ",".join(str(u) for u in range(1, n + 1, 2))
    unt, t = r.ok("UID COPY %s Trash" % odd)
    assert re.match(r"\S+ OK (\[COPYUID \d+ [0-9:,]+ [0-9:,]+\] )?UID COPY completed$", t), t
    assert status(r, "Trash", "MESSAGES") == n // 2
    r.close()
