"""Durability of smtpd's 250: 16 parallel senders, smtpd killed with
SIGKILL in the middle, restarted; every message that got a 250 must be in
the store exactly once, and no message may be there twice."""
import collections
import os
import re
import smtplib
import threading
import time

from lib.smtp import BOB, CAROL, token_message, setup_users, token

SENDERS = 16


def sender(inst, rcpt, acked, stop, errors):
    while not stop.is_set():
        try:
            with smtplib.SMTP("127.0.0.1", inst.port("smtp"), timeout=10) as c:
                c.ehlo("load.test")
                while not stop.is_set():
                    tok = token()
                    # Use the low-level calls so that exactly the final
                    # 250 counts as an acknowledgement.
                    c.mail("x@remote.test")
                    c.rcpt(rcpt)
                    code, _ = c.data(token_message(tok, to=rcpt))
                    if code == 250:
                        acked.append((rcpt, tok))
        except (smtplib.SMTPException, OSError) as e:
            errors.append(repr(e))
            time.sleep(0.01)


def tokens_in_store(inst, address):
    seen = collections.Counter()
    for f in inst.maildir_files(address):
        with open(f, "rb") as fh:
            for m in re.finditer(rb"Message-ID: <([0-9a-f]{32})@", fh.read()):
                seen[m.group(1).decode()] += 1
    return seen


def test_sigkill_during_parallel_delivery(pr):
    setup_users(pr)
    pr.start("smtpd")
    acked, errors, stop = [], [], threading.Event()
    threads = [threading.Thread(target=sender,
                                args=(pr, BOB if i % 2 else CAROL, acked,
                                      stop, errors))
               for i in range(SENDERS)]
    for t in threads:
        t.start()
    deadline = time.time() + 60
    while len(acked) < 300 and time.time() < deadline:
        time.sleep(0.02)
    pr.kill("smtpd")            # SIGKILL with deliveries in flight
    stop.set()
    for t in threads:
        t.join(30)
    assert len(acked) >= 50, (len(acked), errors[:5])
    snapshot = list(acked)

    pr.start("smtpd")           # must come back on the same store
    for rcpt in (BOB, CAROL):
        seen = tokens_in_store(pr, rcpt)
        dup = [t for t, n in seen.items() if n > 1]
        assert not dup, f"duplicates for {rcpt}: {dup[:5]}"
        for r, tok in snapshot:
            if r == rcpt:
                assert seen[tok] == 1, f"acked message {tok} lost for {rcpt}"
    # and it delivers again after the restart
    tok = token()
    with smtplib.SMTP("127.0.0.1", pr.port("smtp"), timeout=10) as c:
        assert c.sendmail("x@remote.test", [BOB], token_message(tok)) == {}
    assert tokens_in_store(pr, BOB)[tok] == 1


def test_sigterm_during_parallel_delivery(pr):
    """A clean stop with deliveries in flight: exit 0, no sanitizer
    report (pr.stop checks both), and every 250 honoured."""
    setup_users(pr)
    pr.start("smtpd")
    acked, errors, stop = [], [], threading.Event()
    threads = [threading.Thread(target=sender,
                                args=(pr, BOB, acked, stop, errors))
               for i in range(SENDERS)]
    for t in threads:
        t.start()
    deadline = time.time() + 60
    while len(acked) < 100 and time.time() < deadline:
        time.sleep(0.02)
    pr.stop("smtpd")
    stop.set()
    for t in threads:
        t.join(30)
    assert len(acked) >= 20, (len(acked), errors[:5])
    seen = tokens_in_store(pr, BOB)
    assert all(n == 1 for n in seen.values())
    for _, tok in list(acked):
        assert seen[tok] == 1, f"acked message {tok} lost"
