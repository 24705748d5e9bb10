"""imapd: a bulk STORE writes the index only and the maildir file names
catch up after the tagged reply. The flags are durable at the OK (kill -9
right after it loses nothing), the names settle in the background (or
after a restart), bodies stay readable while they are renamed, and a
reindex from the files alone then brings the flags back."""
import os
import re
import shutil

from lib import wait_for
from lib.imap import Raw, append_ok, msg, plain_instance

N = 150     # above imapd's threshold for a deferred STORE (64)


def fill(pr, n=N):
    r = Raw(pr)
    r.login()
    for i in range(n):
        append_ok(r, msg("m%d" % i, body="body %d\r\n" % i))
    r.close()


def flags_by_uid(r):
    unt, _ = r.ok("UID FETCH 1:* (UID FLAGS)")
    out = {}
    for u in unt:
        m = re.match(rb"\* \d+ FETCH \(UID (\d+) FLAGS \(([^)]*)\)\)", u)
        if m:
            out[int(m.group(1))] = set(m.group(2).split()) - {b"\\Recent"}
    return out


def infos(pr):
    """The info letters of every INBOX file name."""
    out = []
    for f in pr.maildir_files("alice@example.test"):
        name = os.path.basename(f)
        out.append(name.split(":2,", 1)[1] if ":2," in name else "")
    return out


def names_have(pr, letter, n=N):
    got = infos(pr)
    return len(got) == n and all(letter in i for i in got)


def names_lack(pr, letter, n=N):
    got = infos(pr)
    return len(got) == n and not any(letter in i for i in got)


def test_store_then_kill9_flags_kept_names_catch_up(pr):
    plain_instance(pr)
    pr.start("imapd")
    fill(pr)
    r = Raw(pr)
    r.login()
    r.ok("SELECT INBOX")
    unt, t = r.ok("STORE 1:* +FLAGS (\\Flagged)")
    assert sum(b"FETCH" in u for u in unt) == N
    pr.kill("imapd")        # right after the OK: the catch-up may be cut
    r.close()
    pr.start("imapd")
    r = Raw(pr)
    r.login()
    r.ok("SELECT INBOX")
    fl = flags_by_uid(r)
    assert len(fl) == N and all(f == {b"\\Flagged"} for f in fl.values()), fl
    r.close()
    # The restarted daemon finishes what the kill left behind.
    assert wait_for(lambda: names_have(pr, "F"), timeout=120), infos(pr)
    # Rebuilt from the files alone, the flags come back.
    pr.stop("imapd")
    shutil.rmtree(os.path.join(pr.data_dir, "index"))
    pr.mailctl("reindex", "alice@example.test")
    pr.start("imapd")
    r = Raw(pr)
    r.login()
    r.ok("SELECT INBOX")
    fl = flags_by_uid(r)
    assert len(fl) == N and all(f == {b"\\Flagged"} for f in fl.values()), fl
    r.close()


def test_bodies_readable_while_names_catch_up(pr):
    plain_instance(pr)
    pr.start("imapd")
    fill(pr)
    r = Raw(pr)
    r.login()
    r.ok("SELECT INBOX")
    r.ok("STORE 1:* +FLAGS.SILENT (\\Seen \\Answered)")
    # At once, while the catch-up may be renaming them.
    unt, _ = r.ok("FETCH 1:* (BODY.PEEK[TEXT])")
    texts = b"".join(unt)
    for i in range(N):
        assert b"body %d\r\n" % i in texts, i
    assert wait_for(lambda: names_have(pr, "R") and names_have(pr, "S"),
                    timeout=120), infos(pr)
    # A second bulk change in the other direction settles the same way,
    # and the flags a client sees never depended on the names.
    r.ok("STORE 1:* -FLAGS.SILENT (\\Seen \\Answered)")
    fl = flags_by_uid(r)
    assert len(fl) == N and all(not f for f in fl.values()), fl
    assert wait_for(lambda: names_lack(pr, "R") and names_lack(pr, "S"),
                    timeout=120), infos(pr)
    # COPY and EXPUNGE of messages whose names may still be behind.
    r.ok("STORE 1:* +FLAGS.SILENT (\\Deleted)")
    r.ok("COPY 1:10 Archive")
    unt, _ = r.ok("EXPUNGE")
    assert sum(b"EXPUNGE" in u for u in unt) == N
    assert wait_for(lambda: infos(pr) != [] and len(infos(pr)) == 10
                    and all("T" in i for i in infos(pr)), timeout=120), infos(pr)
    r.ok("SELECT Archive")
    unt, _ = r.ok("FETCH 1:10 (BODY.PEEK[TEXT])")
    assert sum(b"body " in u for u in unt) == 10
    r.close()
