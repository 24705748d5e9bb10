"""Helpers of the imap_ext2 tests (imaplib clients): the shared ones of
tests/proto/imap_common.py under the names these tests use, the module
instance fixture `ext2`, and a few reply parsers."""
import re

from imap_common import imaplib_client, imaplib_ok, imaplib_raw, module_instance
from imap_common import message as _message
from imap_common import new_user as _new_user

ext2 = module_instance("ext2")
client = imaplib_client
raw = imaplib_raw
ok = imaplib_ok


def new_user(pr):
    return _new_user(pr, "e")


def message(subject, to="x@example.test"):
    return _message(subject, "body of %s\r\n" % subject, to=to)


def fill(m, n, box="INBOX", prefix="msg"):
    for i in range(n):
        typ, data = m.append(box, None, None, message("%s %d" % (prefix, i + 1)))
        assert typ == "OK", data


def caps(m):
    typ, data = m.capability()
    return set(data[0].decode().upper().split())


def modseq_of(lines):
    """{uid or msn: modseq} from FETCH lines."""
    out = {}
    for x in lines:
        f = re.match(r"\* (\d+) FETCH \((.*)\)$", x)
        if not f:
            continue
        u = re.search(r"UID (\d+)", f.group(2))
        ms = re.search(r"MODSEQ \((\d+)\)", f.group(2))
        if ms:
            out[int(u.group(1)) if u else int(f.group(1))] = int(ms.group(1))
    return out
