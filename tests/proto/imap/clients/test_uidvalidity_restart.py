"""UIDVALIDITY never changes for a mailbox that still exists: not across an imapd
restart, not after `mailctl reindex`, and UIDs and flags survive both (Thunderbird
throws its cache away on a change, and mutt its header cache). Runs on its own
instance because it restarts imapd."""
import os
import re

import pytest

from lib import BIN, PASSWORD, Instance
from .replay import Target, make_message

pytestmark = pytest.mark.skipif(
    os.environ.get("IMAP_REPLAY_TARGET") is not None
    or not all(os.access(os.path.join(BIN, n), os.X_OK) for n in ("imapd", "mailctl")),
    reason=f"imapd/mailctl not built in {BIN} (or running against an external server)")


def snapshot(t):
    c = t.login()
    out = {}
    try:
        for box in ("INBOX", "Archive"):
            u, _ = c.ok(f"SELECT {box}")
            v = re.search(r"UIDVALIDITY (\d+)", " ".join(u)).group(1)
            nxt = re.search(r"UIDNEXT (\d+)", " ".join(u)).group(1)
            u, _ = c.ok("UID FETCH 1:* (UID FLAGS)")
            msgs = sorted((int(re.search(r"UID (\d+)", r).group(1)),
                           frozenset(re.search(r"FLAGS \(([^)]*)\)", r).group(1).split())
                           - {"\\Recent"}) for r in u if " FETCH " in r)
            out[box] = (v, nxt, msgs)
    finally:
        c.close()
    return out


def test_uidvalidity_survives_restart_and_reindex():
    pr = Instance()
    try:
        user = pr.add_user("keep@example.test")
        pr.start("imapd")
        t = Target("127.0.0.1", pr.port("imap"), pr.port("imaps"), user, PASSWORD)
        for i in range(3):
            t.append("INBOX", make_message(f"keep {i}", to=user))
        t.append("Archive", make_message("archived", to=user), "\\Seen $label1")
        c = t.login(select="INBOX")
        c.ok("STORE 2 +FLAGS (\\Flagged $Forwarded)")
        c.ok("STORE 1 +FLAGS (\\Deleted)")
        c.ok("EXPUNGE")
        c.close()
        before = snapshot(t)
        pr.stop("imapd")
        pr.start("imapd")
        t.imap_port, t.imaps_port = pr.port("imap"), pr.port("imaps")
        assert snapshot(t) == before, "changed across an imapd restart"
        pr.stop("imapd")
        pr.mailctl("reindex", user)
        pr.start("imapd")
        after = snapshot(t)
        # UIDNEXT may only grow (a reindex may leave a safety gap)
        for box, (v, nxt, msgs) in before.items():
            av, anxt, amsgs = after[box]
            assert (av, amsgs) == (v, msgs), f"{box} changed by reindex:\n{before}\n{after}"
            assert int(anxt) >= int(nxt), f"{box}: UIDNEXT went back {nxt} -> {anxt}"
        # UIDs keep increasing after the reindex
        t.append("INBOX", make_message("after reindex", to=user))
        c = t.login(select="INBOX")
        u, _ = c.ok("UID FETCH * (UID)")
        assert int(re.search(r"UID (\d+)", u[0]).group(1)) >= int(before["INBOX"][1])
        c.close()
    finally:
        pr.stop_all()
