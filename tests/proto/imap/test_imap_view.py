"""imapd: the selected-mailbox view against other sessions. SEARCH sees
messages expunged elsewhere but not yet reported by their last known
state (their MSNs still stand, RFC 3501 §7.4.1)."""
from imap_core_helper import Raw, msg, plain_instance, wait_for


def append(r, text, mbox="INBOX"):
    tag = r.tag()
    r.send(("%s APPEND %s {%d+}\r\n" % (tag, mbox, len(text))).encode() + text + b"\r\n")
    unt, t = r.until(tag)
    assert b" OK " in t, t
    return unt


def test_search_sees_unreported_expunges_by_last_state(pr):
    plain_instance(pr)
    pr.start("imapd")
    a, b = Raw(pr), Raw(pr)
    a.login()
    b.login()
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
