"""imapd extensions end to end: IDLE (changes from smtpd, pop3d and other
sessions, DONE pipelined), NAMESPACE, ID, ENABLE, UNSELECT, UIDPLUS
(APPENDUID, COPYUID, UID EXPUNGE), MOVE, COMPRESS=DEFLATE, STATUS=SIZE and
APPENDLIMIT. Events are awaited with a generous socket timeout, never
against a time budget."""
import poplib
import re
import zlib

import pytest

from conftest import PASSWORD
from ext_helper import Raw, login, message, module_instance, new_user, smtp_deliver

LIMIT = 10 * 1024 * 1024            # the harness's max_message_size


ext = module_instance("ext", ("imapd", "smtpd", "pop3d"))


def caps(line):
    m = re.search(r"CAPABILITY ([^\]\r]*)", line)
    return set(m.group(1).upper().split())


def fill(r, n, box="INBOX", to="x@example.test"):
    for i in range(n):
        unt, t = r.append(box, message("msg %d" % (i + 1), to=to))
        assert " OK " in t, t


def two_selected(pr, n):
    """A fresh user with n messages and two sessions that selected its
    INBOX: (user, a, b)."""
    user = new_user(pr)
    a = login(pr, user)
    fill(a, n, to=user)
    a.ok("SELECT INBOX")
    b = login(pr, user)
    b.ok("SELECT INBOX")
    return user, a, b


def uids(r):
    unt, t = r.ok("UID SEARCH ALL")
    return [int(x) for x in unt[-1].split()[2:]]


# ---- capabilities --------------------------------------------------------

def test_capabilities_after_login_only(ext):
    user = new_user(ext)
    r = Raw(ext)
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

def test_namespace(ext):
    r = login(ext, new_user(ext))
    unt, t = r.ok("NAMESPACE")
    assert unt == ['* NAMESPACE (("" "/")) NIL NIL'], unt
    unt, t = r.cmd("NAMESPACE extra")
    assert " BAD " in t
    r.close()


def test_id_logged_escaped(ext):
    r = Raw(ext)
    unt, t = r.ok('ID ("name" "Evil\\"Client" "version" "1.0" "os" NIL)')
    assert unt and unt[0].startswith('* ID ("name" "Postroom" "version" "'), unt
    unt, t = r.ok("ID NIL")
    assert unt[0].startswith("* ID (")
    for bad in ('ID ("name")', "ID", 'ID "name"', 'ID (name "x")',
                'ID ("%s" "x")' % ("k" * 31)):
        unt, t = r.cmd(bad)
        assert " BAD " in t, (bad, t)
    r.close()
    log = ext.log("imapd")
    assert 'id name="Evil"Client" version="1.0" os="NIL"' in log, log[-2000:]


def test_enable(ext):
    r = login(ext, new_user(ext))
    unt, t = r.ok("ENABLE X-NO-SUCH-EXTENSION")
    assert unt == ["* ENABLED"], unt
    unt, t = r.cmd("ENABLE")
    assert " BAD " in t
    r.ok("SELECT INBOX")
    unt, t = r.cmd("ENABLE X-FOO")          # RFC 5161: authenticated state only
    assert " BAD " in t
    r.close()


def test_unselect_does_not_expunge(ext):
    user = new_user(ext)
    r = login(ext, user)
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


# ---- IDLE ----------------------------------------------------------------

def idle(r):
    tag = r.tag()
    r.send("%s IDLE\r\n" % tag)
    ln = r.line().decode()
    assert ln.startswith("+ "), ln
    return tag


def done(r, tag):
    r.send("DONE\r\n")
    unt, t = r.until(tag)
    assert t == "%s OK IDLE completed" % tag, t
    return unt


def test_idle_sees_smtp_delivery(ext):
    user = new_user(ext)
    r = login(ext, user)
    r.ok("SELECT INBOX")
    tag = idle(r)
    smtp_deliver(ext, user, "pushed")
    seen = r.wait_untagged(lambda x: x.endswith(" EXISTS"))
    assert seen[-1] == "* 1 EXISTS", seen
    done(r, tag)
    unt, t = r.ok("FETCH 1 (BODY.PEEK[HEADER])")
    assert "pushed" in unt[0]
    r.close()


def test_idle_in_authenticated_state(ext):
    r = login(ext, new_user(ext))
    tag = idle(r)
    done(r, tag)
    r.ok("NOOP")
    r.close()


def test_idle_sees_flags_and_expunge_from_other_session(ext):
    user, a, b = two_selected(ext, 3)
    tag = idle(a)
    b.ok("STORE 2 +FLAGS (\\Flagged)")
    seen = a.wait_untagged(lambda x: "FETCH" in x)
    assert re.match(r"\* 2 FETCH \(FLAGS \(\\Flagged( \\Recent)?\)\)$", seen[-1]), seen
    b.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    b.ok("EXPUNGE")
    seen = a.wait_untagged(lambda x: x.endswith("EXPUNGE"))
    assert seen[-1] == "* 1 EXPUNGE", seen
    unt = done(a, tag)
    unt, t = a.ok("FETCH 1:* (FLAGS)")
    assert len(unt) == 2 and "\\Flagged" in unt[0], unt
    a.close()
    b.close()


def test_idle_sees_pop3_delete(ext):
    user = new_user(ext)
    a = login(ext, user)
    fill(a, 2, to=user)
    a.ok("SELECT INBOX")
    tag = idle(a)
    p = poplib.POP3("127.0.0.1", ext.port("pop3"), timeout=30)
    p.user(user)
    p.pass_(PASSWORD)
    p.retr(1)                   # pop3d marks it \Seen at QUIT
    p.dele(2)
    p.quit()
    got = []
    seen = a.wait_untagged(lambda x: got.append(x) or (
        any(y == "* 2 EXPUNGE" for y in got) and
        any(re.match(r"\* 1 FETCH \(FLAGS \(.*\\Seen", y) for y in got)))
    done(a, tag)
    unt, t = a.ok("FETCH 1 (FLAGS)")
    assert "\\Seen" in unt[0], unt
    unt, t = a.ok("STATUS INBOX (MESSAGES)")
    assert "MESSAGES 1" in unt[0]
    a.close()


def test_idle_reports_changes_made_just_before(ext):
    """A change between the last command and IDLE is told right after IDLE
    starts (Thunderbird relies on it)."""
    user = new_user(ext)
    a = login(ext, user)
    a.ok("SELECT INBOX")
    b = login(ext, user)
    fill(b, 1, to=user)
    tag = idle(a)
    seen = a.wait_untagged(lambda x: x.endswith(" EXISTS"))
    assert seen[-1] == "* 1 EXISTS"
    done(a, tag)
    a.close()
    b.close()


def test_idle_done_pipelined_with_next_command(ext):
    user = new_user(ext)
    r = login(ext, user)
    fill(r, 1, to=user)
    r.ok("SELECT INBOX")
    tag = idle(r)
    r.send("DONE\r\nn1 NOOP\r\nn2 FETCH 1 (UID)\r\n")       # one send()
    unt, t = r.until(tag)
    assert t.startswith(tag + " OK"), t
    unt, t = r.until("n1")
    assert t.startswith("n1 OK"), t
    unt, t = r.until("n2")
    assert t.startswith("n2 OK") and "UID" in unt[0], (unt, t)
    # IDLE, DONE and the next command all in one packet
    r.send("i1 IDLE\r\nDONE\r\nn3 NOOP\r\n")
    unt, t = r.until("i1")
    assert unt[0].startswith("+ ") and t.startswith("i1 OK"), (unt, t)
    unt, t = r.until("n3")
    assert t.startswith("n3 OK")
    r.close()


def test_idle_ended_by_other_line(ext):
    r = login(ext, new_user(ext))
    tag = idle(r)
    r.send("x1 NOOP\r\n")
    unt, t = r.until(tag)
    assert t.startswith(tag + " BAD"), t
    unt, t = r.ok("NOOP")
    r.close()


def test_idle_keepalive_and_trim_with_compress(pr):
    """A short keep-alive (env override) shows the "* OK Still here" line and
    trims the idle connection's buffers and zlib state in between; the
    compressed stream must go on working across those trims."""
    pr.write_config(allow_plaintext_auth="yes")
    user = pr.add_user("k@example.test")
    pr.start("imapd", "smtpd", env={"POSTROOM_IMAP_IDLE_KEEPALIVE": "1.5"})
    r = login(pr, user)
    r.ok("COMPRESS DEFLATE")
    r.start_compress()
    r.ok("SELECT INBOX")
    tag = idle(r)
    seen = r.wait_untagged(lambda x: x == "* OK Still here")
    seen = r.wait_untagged(lambda x: x == "* OK Still here")
    smtp_deliver(pr, user, "after trims")
    seen = r.wait_untagged(lambda x: x.endswith(" EXISTS"))
    assert seen[-1] == "* 1 EXISTS"
    seen = r.wait_untagged(lambda x: x == "* OK Still here")
    done(r, tag)
    unt, t = r.ok("FETCH 1 (BODY.PEEK[HEADER])")
    assert "after trims" in unt[0]
    r.ok("LOGOUT")
    r.close()


def test_idle_uses_the_idle_timeout(pr):
    """In IDLE the session lives by imap_idle_timeout, not imap_timeout: with a
    2 s command timeout it outlives several 1 s keep-alives, and after DONE
    the command timeout applies again (autologout)."""
    pr.write_config(allow_plaintext_auth="yes", imap_timeout="2s",
                    imap_idle_timeout="30m")
    user = pr.add_user("t@example.test")
    pr.start("imapd", env={"POSTROOM_IMAP_IDLE_KEEPALIVE": "1"})
    r = login(pr, user)
    r.ok("SELECT INBOX")
    tag = idle(r)
    for _ in range(4):
        r.wait_untagged(lambda x: x == "* OK Still here")
    done(r, tag)
    seen = r.wait_untagged(lambda x: x.startswith("* BYE"))
    assert "Autologout" in seen[-1], seen
    r.close()


def test_idle_connection_closed_and_shutdown(pr):
    """Sessions in IDLE go away cleanly: one closed by the client, one still
    idling when the daemon stops (the harness checks exit 0 and no leak)."""
    pr.write_config(allow_plaintext_auth="yes")
    user = pr.add_user("s@example.test")
    pr.start("imapd")
    a = login(pr, user)
    a.ok("SELECT INBOX")
    idle(a)
    a.close()
    b = login(pr, user)
    b.ok("SELECT INBOX")
    idle(b)
    pr.stop("imapd")
    seen = b.wait_untagged(lambda x: x.startswith("* BYE"))
    b.close()


# ---- UIDPLUS -------------------------------------------------------------

def status(r, box, item):
    unt, t = r.ok("STATUS %s (%s)" % (box, item))
    return int(re.search(item + r" (\d+)", unt[0]).group(1))


def test_appenduid(ext):
    user = new_user(ext)
    r = login(ext, user)
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


def test_copyuid(ext):
    user = new_user(ext)
    r = login(ext, user)
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


def test_uid_expunge(ext):
    user, a, b = two_selected(ext, 4)
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

def test_uid_move_flags_copyuid_and_other_session(ext):
    user, a, b = two_selected(ext, 3)
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


def test_move_by_sequence_and_errors(ext):
    user = new_user(ext)
    r = login(ext, user)
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


# ---- COMPRESS=DEFLATE ----------------------------------------------------

def test_compress_round_trip(ext):
    user = new_user(ext)
    r = Raw(ext)
    unt, t = r.cmd("COMPRESS DEFLATE")
    assert " BAD " in t, "COMPRESS before authentication"
    r.login(user)
    fill(r, 1, to=user)
    r.append("INBOX", message("big", to=user, size=200000))
    unt, t = r.cmd("COMPRESS GZIP")
    assert " BAD " in t
    unt, t = r.cmd("COMPRESS DEFLATE", tag="c1")
    assert t == "c1 OK DEFLATE active", t
    r.start_compress()
    before = r.wire_in
    r.ok("SELECT INBOX")
    unt, t = r.ok("FETCH 1:* (RFC822.SIZE BODY.PEEK[])")
    sizes = [int(re.search(r"RFC822\.SIZE (\d+)", x).group(1)) for x in unt if "FETCH" in x]
    assert len(sizes) == 2 and sizes[1] > 190000
    assert r.wire_in - before < sizes[1] / 2, "FETCH output was not compressed"
    unt, t = r.cmd("COMPRESS DEFLATE")
    assert " NO " in t and "[COMPRESSIONACTIVE]" in t, t
    # a command split over two partial-flushed deflate blocks
    r.sock.sendall(r.deflater.compress(b"p1 NO") + r.deflater.flush(zlib.Z_PARTIAL_FLUSH))
    r.send("OP\r\n")
    unt, t = r.until("p1")
    assert t.startswith("p1 OK"), t
    unt, t = r.ok("LOGOUT")
    r.close()


def test_compress_pipelined_in_same_packet(ext):
    """Bytes sent right behind COMPRESS DEFLATE are compressed ones and must
    be inflated, not parsed as plain text."""
    user = new_user(ext)
    r = login(ext, user)
    d = zlib.compressobj(6, zlib.DEFLATED, -15)
    r.sock.sendall(b"c1 COMPRESS DEFLATE\r\n" + d.compress(b"c2 NOOP\r\n") +
                   d.flush(zlib.Z_SYNC_FLUSH))
    unt, t = r.until("c1")
    assert t == "c1 OK DEFLATE active", t
    r.start_compress()
    r.deflater = d
    unt, t = r.until("c2")
    assert t.startswith("c2 OK"), t
    r.ok("NOOP")
    r.close()


def test_compress_garbage_closes(ext):
    user = new_user(ext)
    r = login(ext, user)
    r.ok("COMPRESS DEFLATE")
    r.sock.sendall(b"\xff\xff\xff\xff not deflate at all\r\n")
    with pytest.raises((EOFError, ConnectionResetError)):
        while True:
            r._fill()
    r.close()


# ---- STATUS=SIZE, APPENDLIMIT --------------------------------------------

def test_status_size(ext):
    user = new_user(ext)
    r = login(ext, user)
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


def test_appendlimit(ext):
    user = new_user(ext)
    r = login(ext, user)
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


def test_copyuid_too_long_for_one_line_is_left_out(ext):
    """COPY of a set whose COPYUID would not fit a reply line gets a clean OK
    without the code (never a cut one); the copies are all made."""
    user = new_user(ext)
    r = login(ext, user)
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
