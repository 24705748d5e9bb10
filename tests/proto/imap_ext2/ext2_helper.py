"""imaplib helpers for the imap_ext2 tests: a logged-in imaplib client per
fresh user, raw commands for the syntax imaplib has no verb for (returns
the untagged lines as text and the tagged line)."""
import imaplib
import itertools
import re

from conftest import PASSWORD

_users = itertools.count(1)


def new_user(pr):
    return pr.add_user("e%d@example.test" % next(_users))


def message(subject, to="x@example.test"):
    return ("From: Bob <bob@example.test>\r\nTo: %s\r\nSubject: %s\r\n"
            "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
            "Message-ID: <%s.%d@example.test>\r\n\r\nbody of %s\r\n"
            % (to, subject, subject.replace(" ", "."), next(_users), subject)).encode()


def client(pr, user):
    m = imaplib.IMAP4("127.0.0.1", pr.port("imap"), timeout=30)
    m.login(user, PASSWORD)
    return m


def fill(m, n, box="INBOX", prefix="msg"):
    for i in range(n):
        typ, data = m.append(box, None, None, message("%s %d" % (prefix, i + 1)))
        assert typ == "OK", data


def raw(m, cmd):
    """Runs cmd; returns (status, untagged lines as str, tagged line)."""
    tag = m._new_tag().decode()
    m.send(("%s %s\r\n" % (tag, cmd)).encode())
    lines = []
    while True:
        line = m.readline().decode("latin-1").rstrip("\r\n")
        lit = re.search(r"\{(\d+)\}$", line)
        if lit:
            line += "\r\n" + m.read(int(lit.group(1))).decode("latin-1")
            line += m.readline().decode("latin-1").rstrip("\r\n")
        if line.startswith(tag + " "):
            return line.split()[1], lines, line
        lines.append(line)


def ok(m, cmd):
    typ, lines, tagged = raw(m, cmd)
    assert typ == "OK", (cmd, tagged, lines)
    return lines, tagged


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
