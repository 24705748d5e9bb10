"""imapd IDLE end to end: changes from smtpd, pop3d and other sessions reach
an idling client, DONE pipelined with the next command, IDLE over COMPRESS
with buffer trims, the IDLE timeout, and shutdown of idling connections.
Events are awaited with a generous socket timeout, never against a time
budget."""
import re

from lib import deliver, message, new_user, pop3_login
from lib.imap import module_instance, raw_fill as fill, raw_login as login, two_selected

imapsrv = module_instance("imapsrv", ("imapd", "smtpd", "pop3d"))


def smtp_deliver(pr, to, subject):
    """Delivers a message to `to` through smtpd (another process)."""
    deliver(pr, to, message(subject, to=to), sender="bob@example.test")


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


def test_idle_sees_smtp_delivery(imapsrv):
    user = new_user(imapsrv)
    r = login(imapsrv, user)
    r.ok("SELECT INBOX")
    tag = idle(r)
    smtp_deliver(imapsrv, user, "pushed")
    seen = r.wait_untagged(lambda x: x.endswith(" EXISTS"))
    assert seen[-1] == "* 1 EXISTS", seen
    done(r, tag)
    unt, t = r.ok("FETCH 1 (BODY.PEEK[HEADER])")
    assert "pushed" in unt[0]
    r.close()


def test_idle_in_authenticated_state(imapsrv):
    r = login(imapsrv, new_user(imapsrv))
    tag = idle(r)
    done(r, tag)
    r.ok("NOOP")
    r.close()


def test_idle_sees_flags_and_expunge_from_other_session(imapsrv):
    user, a, b = two_selected(imapsrv, 3)
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


def test_idle_sees_pop3_delete(imapsrv):
    user = new_user(imapsrv)
    a = login(imapsrv, user)
    fill(a, 2, to=user)
    a.ok("SELECT INBOX")
    tag = idle(a)
    p = pop3_login(imapsrv, user)
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


def test_idle_reports_changes_made_just_before(imapsrv):
    """A change between the last command and IDLE is told right after IDLE
    starts (Thunderbird relies on it)."""
    user = new_user(imapsrv)
    a = login(imapsrv, user)
    a.ok("SELECT INBOX")
    b = login(imapsrv, user)
    fill(b, 1, to=user)
    tag = idle(a)
    seen = a.wait_untagged(lambda x: x.endswith(" EXISTS"))
    assert seen[-1] == "* 1 EXISTS"
    done(a, tag)
    a.close()
    b.close()


def test_idle_done_pipelined_with_next_command(imapsrv):
    user = new_user(imapsrv)
    r = login(imapsrv, user)
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


def test_idle_ended_by_other_line(imapsrv):
    r = login(imapsrv, new_user(imapsrv))
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
    4 s command timeout (room for LOGIN and SELECT on a loaded machine) it
    outlives eight 1 s keep-alives, and after DONE the command timeout
    applies again (autologout)."""
    pr.write_config(allow_plaintext_auth="yes", imap_timeout="4s",
                    imap_idle_timeout="30m")
    user = pr.add_user("t@example.test")
    pr.start("imapd", env={"POSTROOM_IMAP_IDLE_KEEPALIVE": "1"})
    r = login(pr, user)
    r.ok("SELECT INBOX")
    tag = idle(r)
    for _ in range(8):
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
