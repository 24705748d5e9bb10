"""Python's imaplib (3.11) against every extension imapd may advertise. Each test
skips when its capability is not advertised after login, so an advertised
capability must pass. Where imaplib has no verb (IDLE, COMPRESS) the raw command
goes through imaplib's own send/readline or the replay driver's connection."""
import imaplib
import re
import time
import zlib

import pytest

from .replay import make_message, tls_context


def connect(target):
    m = imaplib.IMAP4_SSL(target.host, target.imaps_port, ssl_context=tls_context(),
                          timeout=30)
    m.login(target.user, target.password)
    m.caps = {c.upper() for c in m.capabilities}
    return m


def need(m, *caps):
    typ, data = m.capability()
    have = {c.upper() for c in data[0].decode().split()}
    for c in caps:
        if c.upper() not in have:
            pytest.skip(f"server does not advertise {c}")
    return have


def fill(target, n, box="INBOX"):
    for i in range(n):
        target.append(box, make_message(f"ext {i + 1}", to=target.user))


def raw(m, cmd):
    """Runs a command imaplib does not know; returns (typ, untagged lines as str)."""
    tag = m._new_tag().decode()
    m.send(f"{tag} {cmd}\r\n".encode())
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


def test_imaplib_core(target):
    m = connect(target)
    assert "IMAP4REV1" in m.caps
    fill(target, 2)
    typ, data = m.select("INBOX")
    assert typ == "OK" and data == [b"2"]
    typ, data = m.uid("SEARCH", None, "ALL")
    assert typ == "OK" and len(data[0].split()) == 2
    typ, data = m.fetch("1", "(RFC822.SIZE BODY.PEEK[])")
    assert typ == "OK"
    size = int(re.search(rb"RFC822\.SIZE (\d+)", data[0][0]).group(1))
    assert size == len(data[0][1])
    typ, data = m.list()
    assert typ == "OK" and any(b"INBOX" in d for d in data)
    typ, data = m.status("INBOX", "(MESSAGES UNSEEN UIDNEXT UIDVALIDITY)")
    assert typ == "OK" and b"MESSAGES 2" in data[0]
    m.create("Work")
    m.subscribe("Work")
    typ, data = m.lsub()
    assert any(b"Work" in d for d in data)
    m.rename("Work", "Work2")
    typ, data = m.delete("Work2")
    assert typ == "OK"
    m.store("1", "+FLAGS", "(\\Deleted)")
    typ, data = m.expunge()
    assert data == [b"1"]
    m.check()
    m.close()
    m.logout()


def test_idle(target):
    m = connect(target)
    need(m, "IDLE")
    fill(target, 1)
    m.select("INBOX")
    tag = m._new_tag().decode()
    m.send(f"{tag} IDLE\r\n".encode())
    assert m.readline().startswith(b"+")
    target.deliver(make_message("idle push", to=target.user))
    line = m.readline()
    while not re.match(rb"\* \d+ EXISTS", line):
        assert line.startswith(b"* "), line
        line = m.readline()
    assert line.startswith(b"* 2 EXISTS"), line
    m.send(b"DONE\r\n")
    line = m.readline()
    while line.startswith(b"* "):
        line = m.readline()
    assert line.startswith(f"{tag} OK".encode()), line
    m.noop()
    m.logout()


def test_idle_sees_smtp_delivery_from_another_process(target):
    """IDLE latency: a message delivered by smtpd reaches the IDLE session. The
    event is asserted (with a generous read timeout), not a time budget."""
    if target.smtp_port is None:
        pytest.skip("smtpd is not built")
    m = connect(target)
    need(m, "IDLE")
    m.select("INBOX")
    tag = m._new_tag().decode()
    m.send(f"{tag} IDLE\r\n".encode())
    assert m.readline().startswith(b"+")
    t0 = time.monotonic()
    target.deliver(make_message("through smtpd", to=target.user))
    line = m.readline()
    while not line.endswith(b"EXISTS\r\n"):
        line = m.readline()
    elapsed = time.monotonic() - t0
    assert line == b"* 1 EXISTS\r\n", line
    print(f"SMTP 250 -> IDLE EXISTS: {elapsed * 1000:.0f} ms")
    m.send(b"DONE\r\n")
    m.readline()
    m.logout()


def test_namespace(target):
    m = connect(target)
    need(m, "NAMESPACE")
    typ, data = m.namespace()
    assert typ == "OK" and data[0] == b'(("" "/")) NIL NIL', data
    m.logout()


def test_id(target):
    m = connect(target)
    need(m, "ID")
    typ, lines, tagged = raw(m, 'ID ("name" "imaplib" "version" "3.11")')
    assert typ == "OK" and any(x.startswith("* ID ") for x in lines), lines
    typ, lines, tagged = raw(m, "ID NIL")
    assert typ == "OK"
    m.logout()


def test_enable(target):
    m = connect(target)
    have = need(m, "ENABLE")
    if "CONDSTORE" in have:
        typ, lines, tagged = raw(m, "ENABLE CONDSTORE")
        assert typ == "OK" and any(x.upper().startswith("* ENABLED") and "CONDSTORE" in x.upper()
                                   for x in lines), lines
    typ, lines, tagged = raw(m, "ENABLE X-NO-SUCH-EXTENSION")
    assert typ == "OK", tagged          # unknown extensions are ignored
    assert not any("X-NO-SUCH" in x.upper() for x in lines)
    m.logout()


def test_unselect(target):
    m = connect(target)
    need(m, "UNSELECT")
    fill(target, 2)
    m.select("INBOX")
    m.store("1", "+FLAGS", "(\\Deleted)")
    typ, lines, tagged = raw(m, "UNSELECT")
    assert typ == "OK" and not any("EXPUNGE" in x for x in lines)
    typ, data = m.status("INBOX", "(MESSAGES)")
    assert b"MESSAGES 2" in data[0], "UNSELECT expunged"
    typ, lines, tagged = raw(m, "FETCH 1 (FLAGS)")
    assert typ == "BAD", "FETCH after UNSELECT must be refused"
    m.logout()


def test_uidplus(target):
    m = connect(target)
    need(m, "UIDPLUS")
    msg = make_message("uidplus", to=target.user)
    typ, data = m.append("INBOX", None, None, msg)
    mt = re.search(rb"\[APPENDUID (\d+) (\d+)\]", data[0])
    assert typ == "OK" and mt, data
    validity, uid = mt.groups()
    typ, data = m.select("INBOX")
    typ, data = m.uid("FETCH", uid.decode(), "(UID)")
    assert data[0] and b"UID " + uid in data[0]
    m.append("INBOX", None, None, make_message("second", to=target.user))
    m.select("INBOX")
    typ, lines, tagged = raw(m, f"UID COPY {uid.decode()} Archive")
    assert re.search(rf"\[COPYUID \d+ {uid.decode()} \d+\]", tagged), tagged
    # UID EXPUNGE removes only the listed UIDs
    m.store("1:2", "+FLAGS", "(\\Deleted)")
    typ, data = m.uid("EXPUNGE", uid.decode())
    assert typ == "OK"
    typ, data = m.status("INBOX", "(MESSAGES)")
    assert b"MESSAGES 1" in data[0], data
    m.logout()


def test_move(target):
    m = connect(target)
    have = need(m, "MOVE")
    fill(target, 3)
    m.select("INBOX")
    m.store("2", "+FLAGS", "(\\Flagged $Important)")
    typ, data = m.uid("SEARCH", None, "ALL")
    u = data[0].split()
    typ, data = m.uid("MOVE", u[1].decode(), "Archive")
    assert typ == "OK", data
    resp = m.untagged_responses
    if "UIDPLUS" in have:
        assert any(b"COPYUID" in x for x in resp.get("OK", [])), resp
    assert resp.get("EXPUNGE") == [b"2"], resp
    m.select("Archive")
    typ, data = m.fetch("1", "(FLAGS)")
    assert b"\\Flagged" in data[0] and b"$Important" in data[0], data
    m.logout()


def list_lines(m, cmd):
    typ, lines, tagged = raw(m, cmd)
    assert typ == "OK", tagged
    return [x for x in lines if x.startswith("* LIST")]


def test_special_use_and_list_extended(target):
    m = connect(target)
    need(m, "SPECIAL-USE", "LIST-EXTENDED")
    plain = list_lines(m, 'LIST "" "*"')
    for flag, name in [("\\Drafts", "Drafts"), ("\\Sent", "Sent"), ("\\Trash", "Trash"),
                       ("\\Junk", "Junk"), ("\\Archive", "Archive")]:
        assert any(flag in x and name in x for x in plain), (flag, plain)
    su = list_lines(m, 'LIST (SPECIAL-USE) "" "*"')
    assert len(su) == 5 and not any("INBOX" in x for x in su), su
    ret = list_lines(m, 'LIST "" "*" RETURN (SPECIAL-USE)')
    assert any("\\Sent" in x for x in ret)
    sub = list_lines(m, 'LIST (SUBSCRIBED) "" "*" RETURN (SPECIAL-USE)')
    assert all("\\Subscribed" in x for x in sub) and any("\\Trash" in x for x in sub), sub
    multi = list_lines(m, 'LIST "" ("INBOX" "Sent")')
    assert len(multi) == 2, multi
    m.create("Gone")
    m.subscribe("Gone")
    m.delete("Gone")
    sub = list_lines(m, 'LIST (SUBSCRIBED) "" "Gone"')
    assert sub and "\\NonExistent" in sub[0], sub
    m.logout()


def test_create_special_use(target):
    m = connect(target)
    need(m, "CREATE-SPECIAL-USE")
    typ, lines, tagged = raw(m, 'CREATE "Sent Items" (USE (\\Sent))')
    assert typ == "OK", tagged
    got = list_lines(m, 'LIST "" "Sent Items"')
    assert got and "\\Sent" in got[0], got
    typ, lines, tagged = raw(m, 'CREATE "Weird" (USE (\\NoSuchUse))')
    assert typ == "NO" and "USEATTR" in tagged.upper(), tagged
    m.logout()


def test_children(target):
    m = connect(target)
    need(m, "CHILDREN")
    m.create("Parent/Child")
    got = list_lines(m, 'LIST "" "Parent*"')
    parent = [x for x in got if x.endswith("Parent") or x.endswith('Parent"')]
    child = [x for x in got if x.endswith("Parent/Child") or x.endswith('Parent/Child"')]
    assert parent and "\\HasChildren" in parent[0], got
    assert child and "\\HasNoChildren" in child[0], got
    m.logout()


def test_list_status(target):
    m = connect(target)
    need(m, "LIST-STATUS")
    fill(target, 2)
    typ, lines, tagged = raw(m, 'LIST "" "*" RETURN (STATUS (MESSAGES UNSEEN))')
    assert typ == "OK", tagged
    st = [x for x in lines if x.startswith("* STATUS")]
    inbox = [x for x in st if "INBOX" in x]
    assert inbox and "MESSAGES 2" in inbox[0] and "UNSEEN 2" in inbox[0], lines
    assert len(st) >= 6, st
    # Evolution's combined form (camel-imapx-server.c), when everything it needs is there
    have = need(m, "LIST-STATUS")
    if {"LIST-EXTENDED", "SPECIAL-USE", "CHILDREN"} <= have:
        items = "MESSAGES UNSEEN UIDVALIDITY UIDNEXT" + (
            " HIGHESTMODSEQ" if "CONDSTORE" in have else "")
        typ, lines, tagged = raw(
            m, f'LIST "" "*" RETURN (CHILDREN SUBSCRIBED STATUS ({items}) SPECIAL-USE)')
        assert typ == "OK", tagged
        lists = [x for x in lines if x.startswith("* LIST")]
        st = [x for x in lines if x.startswith("* STATUS")]
        assert any("\\Sent" in x and "\\Subscribed" in x for x in lists), lists
        assert all("HasNoChildren" in x or "HasChildren" in x for x in lists), lists
        assert len(st) == len(lists) and all("UIDVALIDITY" in x for x in st), lines
    m.logout()


def test_condstore(target):
    m = connect(target)
    need(m, "CONDSTORE")
    fill(target, 2)
    typ, lines, tagged = raw(m, "SELECT INBOX (CONDSTORE)")
    hm = [re.search(r"HIGHESTMODSEQ (\d+)", x) for x in lines]
    hm = [int(x.group(1)) for x in hm if x]
    assert typ == "OK" and hm, lines
    typ, lines, tagged = raw(m, "FETCH 1:* (MODSEQ)")
    mods = [int(re.search(r"MODSEQ \((\d+)\)", x).group(1)) for x in lines if "FETCH" in x]
    assert len(mods) == 2 and max(mods) <= hm[0]
    typ, lines, tagged = raw(m, "STORE 1 +FLAGS (\\Seen)")
    new = int(re.search(r"MODSEQ \((\d+)\)", " ".join(lines)).group(1))
    assert new > hm[0], lines
    typ, lines, tagged = raw(m, f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {hm[0]})")
    assert len([x for x in lines if "FETCH" in x]) == 1, lines
    typ, lines, tagged = raw(m, "UID FETCH 1:* (FLAGS) (CHANGEDSINCE 0)")
    assert typ == "OK"                                   # iOS sends it
    typ, lines, tagged = raw(m, f"STORE 1 (UNCHANGEDSINCE {hm[0]}) +FLAGS (\\Flagged)")
    assert "[MODIFIED 1]" in tagged.upper(), tagged
    typ, lines, tagged = raw(m, f"SEARCH MODSEQ {new}")
    assert typ == "OK" and any(re.match(r"\* SEARCH 1 \(MODSEQ \d+\)", x) for x in lines), lines
    typ, lines, tagged = raw(m, "STATUS INBOX (HIGHESTMODSEQ)")
    assert any("HIGHESTMODSEQ" in x for x in lines)
    # HIGHESTMODSEQ on every SELECT once CONDSTORE is advertised
    typ, lines, tagged = raw(m, "EXAMINE Drafts")
    assert any("HIGHESTMODSEQ" in x for x in lines), lines
    m.logout()
    # ... also on a plain SELECT of a connection that never enabled it (Thunderbird
    # turns CONDSTORE on only after seeing it there)
    m = connect(target)
    typ, lines, tagged = raw(m, "SELECT INBOX")
    assert any("[HIGHESTMODSEQ " in x for x in lines), lines
    m.logout()


def test_qresync(target):
    m = connect(target)
    need(m, "QRESYNC")
    fill(target, 3)
    typ, lines, tagged = raw(m, "ENABLE QRESYNC")
    assert typ == "OK" and any("QRESYNC" in x.upper() for x in lines if "ENABLED" in x)
    typ, lines, tagged = raw(m, "SELECT INBOX")
    validity = re.search(r"UIDVALIDITY (\d+)", " ".join(lines)).group(1)
    modseq = int(re.search(r"HIGHESTMODSEQ (\d+)", " ".join(lines)).group(1))
    typ, lines, tagged = raw(m, "UID SEARCH ALL")
    us = lines[-1].split()[2:]
    raw(m, f"UID STORE {us[0]} +FLAGS (\\Deleted)")
    raw(m, "EXPUNGE")       # QRESYNC enabled: VANISHED instead of EXPUNGE
    raw(m, f"UID STORE {us[1]} +FLAGS (\\Answered)")
    raw(m, "UNSELECT") if "UNSELECT" in m.caps else raw(m, "EXAMINE Drafts")
    typ, lines, tagged = raw(m, f"SELECT INBOX (QRESYNC ({validity} {modseq}))")
    assert typ == "OK", tagged
    assert any(re.match(rf"\* VANISHED \(EARLIER\) {us[0]}$", x) for x in lines), lines
    assert any("FETCH" in x and f"UID {us[1]}" in x and "\\Answered" in x for x in lines), lines
    typ, lines, tagged = raw(m, f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)")
    assert any(x.startswith("* VANISHED (EARLIER)") for x in lines), lines
    m.logout()


def test_esearch(target):
    m = connect(target)
    need(m, "ESEARCH")
    fill(target, 4)
    m.select("INBOX")
    typ, lines, tagged = raw(m, "UID SEARCH RETURN (MIN MAX COUNT ALL) ALL")
    es = [x for x in lines if x.startswith("* ESEARCH")]
    assert es and "UID" in es[0] and "COUNT 4" in es[0] and "MIN " in es[0], lines
    typ, lines, tagged = raw(m, "SEARCH RETURN () ALL")
    es = [x for x in lines if x.startswith("* ESEARCH")]
    assert es and "ALL 1:4" in es[0], lines
    typ, lines, tagged = raw(m, "SEARCH RETURN (COUNT) SUBJECT nothing-here")
    assert typ == "OK" and "COUNT 0" in " ".join(lines), lines
    m.logout()


def test_searchres(target):
    m = connect(target)
    need(m, "SEARCHRES")
    fill(target, 3)
    m.select("INBOX")
    typ, lines, tagged = raw(m, "UID SEARCH RETURN (SAVE) SUBJECT \"ext 2\"")
    assert typ == "OK" and not any(x.startswith("* SEARCH") for x in lines)
    typ, lines, tagged = raw(m, "UID FETCH $ (UID)")
    f = [x for x in lines if "FETCH" in x]
    assert len(f) == 1 and f[0].startswith("* 2 FETCH"), lines
    m.logout()


def test_status_size(target):
    m = connect(target)
    need(m, "STATUS=SIZE")
    fill(target, 3)
    m.select("INBOX")
    typ, data = m.fetch("1:*", "(RFC822.SIZE)")
    total = sum(int(re.search(rb"RFC822\.SIZE (\d+)", d).group(1)) for d in data)
    typ, data = m.status("INBOX", "(SIZE)")
    assert int(re.search(rb"SIZE (\d+)", data[0]).group(1)) == total, data
    m.logout()


def test_appendlimit(target):
    m = connect(target)
    typ, data = m.capability()
    caps = data[0].decode().upper().split()
    lim = [c for c in caps if c.startswith("APPENDLIMIT=")]
    if not lim and "APPENDLIMIT" not in caps:
        pytest.skip("server does not advertise APPENDLIMIT")
    limit = int(lim[0].split("=")[1]) if lim else None
    if limit is None:
        typ, data = m.status("INBOX", "(APPENDLIMIT)")
        limit = int(re.search(rb"APPENDLIMIT (\d+)", data[0]).group(1))
    assert limit == 10 * 1024 * 1024, limit       # the harness's max_message_size
    tag = m._new_tag().decode()
    m.send(f"{tag} APPEND INBOX {{{limit + 1}}}\r\n".encode())
    line = m.readline()
    assert line.startswith(f"{tag} NO".encode()) and b"TOOBIG" in line.upper(), line
    m.noop()
    # exactly at the limit is accepted
    msg = make_message("at the limit", to=target.user, size=limit)
    assert len(msg) == limit
    typ, data = m.append("INBOX", None, None, msg)
    assert typ == "OK", data
    m.logout()


def test_compress_deflate(target):
    m = connect(target)
    need(m, "COMPRESS=DEFLATE")
    m.logout()
    fill(target, 1)
    target.append("INBOX", make_message("big", to=target.user, size=200000))
    c = target.login()
    c.ok("COMPRESS DEFLATE")
    c.start_compress()
    before = c.wire_in
    u, _ = c.ok("SELECT INBOX")
    u, t = c.ok("FETCH 1:* (RFC822.SIZE BODY.PEEK[])")
    sizes = [int(re.search(r"RFC822\.SIZE (\d+)", x).group(1)) for x in u if "FETCH" in x]
    assert len(sizes) == 2 and sizes[1] > 200000 - 100
    assert c.wire_in - before < sizes[1] / 2, "FETCH output was not compressed"
    # pipelined commands inside one compressed write are all answered
    c.send(b"".join(b"p%d FETCH 2 (BODY.PEEK[]<%d.65536>)\r\n" % (i, (i % 4) * 65536)
                    for i in range(20)))
    done = 0
    while done < 20:
        if c.read_response().startswith(b"p"):
            done += 1
    # a second COMPRESS is refused with [COMPRESSIONACTIVE]
    u, t = c.command("COMPRESS DEFLATE")
    assert t.split()[1] in ("NO", "BAD") and "COMPRESSIONACTIVE" in t.upper(), t
    # partial flushes from the client: one command split across deflate blocks
    c.sock.sendall(c.deflater.compress(b"z1 NO") + c.deflater.flush(zlib.Z_PARTIAL_FLUSH))
    c.send(b"OP\r\n")
    r = c.read_response().decode()
    assert r.startswith("z1 OK"), r
    c.close()
