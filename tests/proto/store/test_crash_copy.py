"""imapd killed with SIGKILL in the middle of `MOVE 1:* Trash` of 1,000
messages: after a restart every message is in INBOX or Trash exactly once,
a later MOVE of the same messages works (it used to fail for good with NO
[UNAVAILABLE] on the files the killed MOVE had linked), and `mailctl
reindex` finds no orphan to turn into a duplicate."""
import imaplib
import os
import random
import socket
import threading
import time

from lib.instance import PASSWORD, WRAP_SCALE

N = 1000
USER = "mover@example.test"


def login(pr):
    c = imaplib.IMAP4("127.0.0.1", pr.port("imap"), timeout=120 * WRAP_SCALE)
    c.login(USER, PASSWORD)
    return c


def subjects(c, box):
    """The Subject of every message of box, as a list."""
    typ, data = c.select(box)
    assert typ == "OK", data
    if int(data[0]) == 0:
        return []
    typ, data = c.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK", data
    out = []
    for item in data:
        if isinstance(item, tuple):
            out.append(item[1].decode().strip())
    return out


def staged_or_linked(box_dir):
    """Files the MOVE has made in Trash so far (wherever it puts them)."""
    n = 0
    for sub in os.listdir(box_dir):
        p = os.path.join(box_dir, sub)
        if os.path.isdir(p):
            n += len(os.listdir(p))
    return n


def check_once(c):
    inbox, trash = subjects(c, "INBOX"), subjects(c, "Trash")
    both = inbox + trash
    dup = sorted({s for s in both if both.count(s) > 1})
    assert not dup, f"{len(dup)} messages twice, e.g. {dup[:3]}"
    assert len(both) == N, (len(inbox), len(trash))
    return inbox, trash


def test_kill_during_move(pr):
    pr.add_user(USER)
    pr.write_config(allow_plaintext_auth="yes")
    pr.start("imapd")
    # Appended over a few connections at once (group commit), so that
    # filling INBOX does not take minutes on a slow machine.
    errors = []

    def fill(part, nparts):
        try:
            a = login(pr)
            for i in range(part, N, nparts):
                msg = ("From: a@example.test\r\nTo: %s\r\nSubject: m%04d"
                       "\r\n\r\nbody %d\r\n" % (USER, i, i)).encode()
                typ, data = a.append("INBOX", None, None, msg)
                assert typ == "OK", data
            a.logout()
        except Exception as e:  # reported by the main thread
            errors.append(repr(e))

    threads = [threading.Thread(target=fill, args=(k, 8)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    c = login(pr)
    typ, data = c.select("INBOX")
    assert int(data[0]) == N

    # Files per mailbox directory now: the MOVE's links show up in one.
    udir = os.path.join(pr.data_dir, "mail", "example.test", "mover")
    before = {d: staged_or_linked(os.path.join(udir, d))
              for d in os.listdir(udir) if d.isdigit()}

    # MOVE without waiting for its answer; kill imapd once the move is
    # seen linking files into some other mailbox, after a random delay.
    tag = c._new_tag().decode()
    c.send(("%s MOVE 1:* Trash\r\n" % tag).encode())
    deadline = time.monotonic() + 120 * WRAP_SCALE
    started = False
    while time.monotonic() < deadline and not started:
        for d, n in before.items():
            if staged_or_linked(os.path.join(udir, d)) > n:
                started = True
        if not started:
            time.sleep(0.002)
    assert started, "the MOVE never started"
    time.sleep(random.random() * 0.08)
    pr.kill("imapd")
    try:
        c.shutdown()
    except (OSError, socket.error):
        pass

    pr.start("imapd")
    c = login(pr)
    inbox, trash = check_once(c)
    # The same first messages again: the killed MOVE had linked them
    # under the very names (uids) this one picks.
    src, dst = ("INBOX", "Trash") if len(inbox) >= 10 else ("Trash", "INBOX")
    c.select(src)
    typ, data = c._simple_command("MOVE", "1:10", dst)
    assert typ == "OK", data
    check_once(c)
    c.logout()

    r = pr.mailctl("reindex", USER)
    c = login(pr)
    check_once(c)
    c.logout()
    # Nothing left beside cur/ either: after the moves and the reindex
    # every file of the user is a message of the index.
    files = sum(len(os.listdir(os.path.join(udir, d, "cur")))
                for d in os.listdir(udir) if d.isdigit())
    assert files == N, (files, r.stdout)
