"""The client-compatibility rules of imapd, one test each, over raw sockets.

Rules (where home-grown IMAP servers break real clients): honest state-dependent capabilities,
literals in astring positions, empty lines, SASL edge cases, UID-set semantics,
partial fetch, RFC822.SIZE, flags on COPY/MOVE, FLAGS.SILENT, INBOX rules, a
trailing '/', 50 connections per user, pipelined STORE/EXPUNGE order.
Core-protocol tests never skip; extension tests skip when the capability is not
advertised after login.
"""
import base64
import re

import pytest

from .replay import capabilities, make_message, quote


def caps_of(conn):
    u, t = conn.ok("CAPABILITY")
    return capabilities(u)


def need(conn, *caps):
    have = caps_of(conn)
    for c in caps:
        if c.upper() not in have:
            pytest.skip(f"server does not advertise {c}")


def status_word(tagged):
    return tagged.split(" ", 2)[1].upper()


def fill(target, n, box="INBOX", **kw):
    for i in range(n):
        target.append(box, make_message(f"msg {i + 1}", to=target.user, **kw))


def uids(conn):
    u, _ = conn.ok("UID FETCH 1:* (UID)")
    return [int(re.search(r"UID (\d+)", r).group(1)) for r in u if " FETCH " in r]


def fetch_lines(untagged):
    return [r for r in untagged if re.match(r"\* \d+ FETCH ", r)]


def literal_of(resp, item):
    """The data of ITEM {n} in a FETCH response (or '' for a quoted empty string)."""
    m = re.search(re.escape(item) + r' (?:\{(\d+)\}\r\n|"")', resp)
    assert m, f"{item} not in {resp[:300]!r}"
    if m.group(1) is None:
        return ""
    n = int(m.group(1))
    return resp[m.end():m.end() + n]


# ---------------------------------------------------------------------------
# capabilities

def test_capabilities_before_tls_on_plain_port(target):
    c = target.connect(tls=False)
    greeting = c.read_response().decode()
    assert greeting.startswith("* OK"), greeting
    u, t = c.ok("CAPABILITY")
    caps = capabilities(u)
    assert "IMAP4REV1" in caps
    assert "STARTTLS" in caps and "LOGINDISABLED" in caps, caps
    assert not [x for x in caps if x.startswith("AUTH=")], caps
    # LOGIN is refused before TLS
    u, t = c.command(f"LOGIN {quote(target.user)} {quote(target.password)}")
    assert status_word(t) in ("NO", "BAD"), t
    c.ok("STARTTLS")
    c.starttls()
    caps = caps_of(c)
    assert "IMAP4REV1" in caps and "AUTH=PLAIN" in caps and "AUTH=LOGIN" in caps, caps
    assert "LOGINDISABLED" not in caps and "STARTTLS" not in caps, caps
    u, t = c.ok(f"LOGIN {quote(target.user)} {quote(target.password)}")
    full = capabilities(u, t)
    assert "IMAP4REV1" in full, f"no CAPABILITY in LOGIN's OK: {u} {t}"
    assert full == caps_of(c), "capabilities in the LOGIN OK differ from CAPABILITY"
    c.close()


def test_capabilities_on_implicit_tls(target):
    c = target.connect(tls=True)
    c.read_response()
    caps = caps_of(c)
    assert "STARTTLS" not in caps and "LOGINDISABLED" not in caps, caps
    assert {"IMAP4REV1", "AUTH=PLAIN", "AUTH=LOGIN"} <= caps, caps
    # AUTHENTICATE's tagged OK carries the full post-login set
    c.send("a1 AUTHENTICATE PLAIN\r\n")
    cont = c.read_response().decode()
    assert re.fullmatch(r"\+ ?", cont), f"continuation is not bare base64: {cont!r}"
    c.send(base64.b64encode(f"\0{target.user}\0{target.password}".encode()) + b"\r\n")
    untagged = []
    while True:
        r = c.read_response().decode()
        if r.startswith("a1 "):
            break
        untagged.append(r)
    assert status_word(r) == "OK", r
    post = capabilities(untagged, r)
    assert "IMAP4REV1" in post
    assert re.search(r"\[CAPABILITY [^\]]*IMAP4rev1", r, re.I), \
        f"no [CAPABILITY ...] in AUTHENTICATE's OK: {r!r}"
    assert post == caps_of(c)
    assert "STARTTLS" not in post
    c.close()


def test_compress_before_login_is_refused(target):
    c = target.connect(tls=True)
    c.read_response()
    u, t = c.command("COMPRESS DEFLATE")
    assert status_word(t) in ("NO", "BAD"), t
    c.ok("NOOP")          # still speaking plain IMAP
    c.close()


# ---------------------------------------------------------------------------
# literals, empty lines, SASL

def sync_literal_cmd(c, parts):
    """parts: list of str/bytes; a bytes part is sent as a synchronizing literal."""
    tag = c.next_tag()
    line = tag.encode() + b" "
    for p in parts:
        if isinstance(p, bytes):
            c.send(line + b"{%d}\r\n" % len(p))
            r = c.read_response().decode()
            if not r.startswith("+"):
                return [], r
            line = p
        else:
            line += p.encode()
    c.send(line + b"\r\n")
    untagged = []
    while True:
        r = c.read_response().decode("latin-1")
        if r.startswith(tag + " "):
            return untagged, r
        untagged.append(r)


def test_login_with_synchronizing_literals(target):
    c = target.connect(tls=True)
    c.read_response()
    u, t = sync_literal_cmd(c, ["LOGIN ", target.user.encode(), " ",
                                target.password.encode()])
    assert status_word(t) == "OK", t
    u, t = sync_literal_cmd(c, ["SELECT ", b"INBOX"])
    assert status_word(t) == "OK", t
    c.close()


def test_literal_plus_everywhere(target):
    c = target.connect(tls=True)
    c.read_response()
    caps = caps_of(c)
    if "LITERAL+" not in caps:
        # LITERAL+ is only advertised after login on some servers
        c.ok(f"LOGIN {quote(target.user)} {quote(target.password)}")
        need(c, "LITERAL+")
        c.close()
        c = target.connect(tls=True)
        c.read_response()
    u, p = target.user.encode(), target.password.encode()
    c.send(b"a1 LOGIN {%d+}\r\n%s {%d+}\r\n%s\r\n" % (len(u), u, len(p), p))
    r = c.read_response().decode()
    while r.startswith("* "):
        r = c.read_response().decode()
    assert r.startswith("a1 OK"), r
    fill(target, 2)
    c.send(b"a2 SELECT {5+}\r\nINBOX\r\n")
    while not (r := c.read_response().decode()).startswith("a2 "):
        pass
    assert r.startswith("a2 OK"), r
    c.send(b"a3 UID SEARCH SUBJECT {5+}\r\nmsg 2\r\n")
    untagged = []
    while not (r := c.read_response().decode()).startswith("a3 "):
        untagged.append(r)
    assert r.startswith("a3 OK"), r
    hits = [x for x in untagged if x.startswith("* SEARCH")]
    assert hits and len(hits[0].split()) == 3, untagged
    c.close()


def test_search_value_as_synchronizing_literal(target):
    fill(target, 3)
    subj = "caf\u00e9 au lait"
    target.append("INBOX", make_message("x", to=target.user).replace(
        b"Subject: x", b"Subject: =?utf-8?q?caf=C3=A9_au_lait?="))
    c = target.login(select="INBOX")
    u, t = sync_literal_cmd(c, ["UID SEARCH CHARSET UTF-8 SUBJECT ", subj.encode()])
    assert status_word(t) == "OK", t
    found = [x for x in u if x.startswith("* SEARCH")]
    assert found and len(found[0].split()) == 3, f"{u} {t}"
    # a plain ASCII literal value, and an empty result is OK
    u, t = sync_literal_cmd(c, ["UID SEARCH SUBJECT ", b"msg 2"])
    assert status_word(t) == "OK" and len([x for x in u if x.startswith("* SEARCH")][0].split()) == 3
    u, t = sync_literal_cmd(c, ["UID SEARCH SUBJECT ", b"no such subject"])
    assert status_word(t) == "OK", t
    assert [x.strip() for x in u if x.startswith("* SEARCH")] == ["* SEARCH"], u
    c.close()


def test_empty_lines_are_ignored(target):
    c = target.login()
    c.send(b"\r\n\r\na1 NOOP\r\n")
    r = c.read_response().decode()
    while r.startswith("* ") and "BAD" not in r:
        r = c.read_response().decode()
    assert r.startswith("a1 OK"), f"empty lines were not ignored: {r!r}"
    c.close()


def test_tagged_command_in_answer_to_sasl_challenge(target):
    c = target.connect(tls=True)
    c.read_response()
    c.send("a1 AUTHENTICATE PLAIN\r\n")
    assert c.read_response().startswith(b"+")
    c.send("a2 LOGOUT\r\n")          # eM Client aborts SASL like this (mox#253)
    r = c.read_response().decode()
    while r.startswith("* ") and not r.startswith("* BYE"):
        r = c.read_response().decode()
    assert re.match(r"a[12] BAD", r), f"expected BAD, got {r!r}"
    # the session recovers: it is not stuck reading base64
    c.send("a3 NOOP\r\n")
    r = c.read_response().decode()
    while not r.startswith("a3 "):
        r = c.read_response().decode()
    assert r.startswith("a3 OK"), r
    c.ok(f"LOGIN {quote(target.user)} {quote(target.password)}")
    c.close()


def test_authenticate_cancel_and_login_mechanism(target):
    c = target.connect(tls=True)
    c.read_response()
    c.send("a1 AUTHENTICATE PLAIN\r\n")
    assert c.read_response().startswith(b"+")
    c.send("*\r\n")
    r = c.read_response().decode()
    assert r.startswith("a1 BAD") or r.startswith("a1 NO"), r
    c.send("a2 AUTHENTICATE LOGIN\r\n")
    r = c.read_response().decode()
    assert re.fullmatch(r"\+ [A-Za-z0-9+/]*=*", r) or r == "+", \
        f"continuation is not bare base64: {r!r}"
    c.send(base64.b64encode(target.user.encode()) + b"\r\n")
    r = c.read_response().decode()
    assert re.fullmatch(r"\+ [A-Za-z0-9+/]*=*", r), r
    c.send(base64.b64encode(target.password.encode()) + b"\r\n")
    r = c.read_response().decode()
    while r.startswith("* "):
        r = c.read_response().decode()
    assert r.startswith("a2 OK"), r
    c.close()


def test_sasl_ir(target):
    c = target.login()
    need(c, "SASL-IR")
    c.close()
    c = target.connect(tls=True)
    c.read_response()
    ir = base64.b64encode(f"\0{target.user}\0{target.password}".encode()).decode()
    c.ok(f"AUTHENTICATE PLAIN {ir}")
    c.close()


def test_wrong_password_is_no(target):
    c = target.connect(tls=True)
    c.read_response()
    u, t = c.command(f"LOGIN {quote(target.user)} \"wrong\"")
    assert status_word(t) == "NO", t
    c.ok(f"LOGIN {quote(target.user)} {quote(target.password)}")
    c.close()


# ---------------------------------------------------------------------------
# sequence sets

def test_uid_sets(target):
    fill(target, 3)
    c = target.login(select="INBOX")
    us = uids(c)
    assert len(us) == 3 and us == sorted(us)
    top = us[-1]
    # n:* with n above the highest UID matches the last message
    u, t = c.ok(f"UID FETCH {top + 10}:* (FLAGS)")
    got = fetch_lines(u)
    assert len(got) == 1 and f"UID {top}" in got[0], u
    # *:* is the last message
    u, t = c.ok("UID SEARCH *:*")
    assert u[-1].split()[2:] == [str(top)], u
    # reversed ranges
    u, _ = c.ok(f"UID FETCH {us[2]}:{us[0]} (UID)")
    assert len(fetch_lines(u)) == 3, u
    u, _ = c.ok("FETCH 3:1 (UID)")
    assert len(fetch_lines(u)) == 3, u
    # unknown UIDs are ignored, empty results are OK
    u, _ = c.ok(f"UID FETCH {top + 100},{us[0]} (UID)")
    assert len(fetch_lines(u)) == 1, u
    u, _ = c.ok(f"UID FETCH {top + 100}:{top + 200} (UID)")
    assert [x for x in u if " FETCH " in x] == [], u
    u, _ = c.ok(f"UID STORE {top + 100} +FLAGS (\\Seen)")
    u, _ = c.ok(f"UID COPY {top + 100} Trash")
    u, _ = c.ok("UID SEARCH SUBJECT nothing-matches-this")
    c.close()


# ---------------------------------------------------------------------------
# partial fetch and sizes

def test_partial_fetch_exact_octets(target):
    msg = make_message("partial", to=target.user, size=5000)
    size = len(msg)
    target.append("INBOX", msg)
    c = target.login(select="INBOX")
    u, _ = c.ok("FETCH 1 (RFC822.SIZE BODY.PEEK[])")
    body = literal_of(u[0], "BODY[]")
    assert len(body) == size and int(re.search(r"RFC822\.SIZE (\d+)", u[0]).group(1)) == size
    for start, count in [(0, 100), (100, 1000), (size - 10, 100), (size - 1, 1),
                         (size, 10), (size + 500, 10), (0, size + 100)]:
        u, _ = c.ok(f"FETCH 1 (BODY.PEEK[]<{start}.{count}>)")
        assert f"BODY[]<{start}>" in u[0], f"reply must name only the origin: {u[0][:120]!r}"
        part = literal_of(u[0], f"BODY[]<{start}>")
        assert part == body[start:start + count], (start, count, len(part))
    # TEXT partial (Thunderbird preview) and HEADER partial
    u, _ = c.ok("FETCH 1 (BODY.PEEK[TEXT]<0.2048> BODY.PEEK[HEADER]<0.20>)")
    text = body[body.index("\r\n\r\n") + 4:]
    assert literal_of(u[0], "BODY[TEXT]<0>") == text[:2048]
    assert literal_of(u[0], "BODY[HEADER]<0>") == body[:20]
    assert "\\Seen" not in u[0]
    c.close()


@pytest.mark.parametrize("kind", ["plain", "8bit", "long-lines", "no-final-newline"])
def test_rfc822_size_equals_body_octets(target, kind):
    msg = make_message("size", to=target.user)
    if kind == "8bit":
        msg = msg.replace(b"hello", "gr\u00fc\u00dfe \u00e9t\u00e9".encode())
    elif kind == "long-lines":
        msg = msg.replace(b"hello", b"x" * 3000)
    elif kind == "no-final-newline":
        msg = msg.rstrip(b"\r\n")
    target.append("INBOX", msg)
    c = target.login(select="INBOX")
    u, _ = c.ok("UID FETCH 1:* (RFC822.SIZE BODY.PEEK[] RFC822.HEADER)")
    r = fetch_lines(u)[0]
    size = int(re.search(r"RFC822\.SIZE (\d+)", r).group(1))
    assert size == len(literal_of(r, "BODY[]")) == len(msg)
    u, _ = c.ok("FETCH 1 (FLAGS)")
    assert "\\Seen" not in u[0], "RFC822.HEADER must not set \\Seen"
    c.close()


def test_rfc822_size_of_smtp_delivered_mail(target):
    if target.smtp_port is None:
        pytest.skip("smtpd is not built")
    target.deliver(make_message("via smtp", to=target.user, size=3000))
    c = target.login(select="INBOX")
    u, _ = c.ok("UID FETCH 1:* (RFC822.SIZE BODY.PEEK[])")
    r = fetch_lines(u)[0]
    size = int(re.search(r"RFC822\.SIZE (\d+)", r).group(1))
    body = literal_of(r, "BODY[]")
    assert size == len(body)
    assert "\r\n" in body and "\n" not in body.replace("\r\n", "")
    c.close()


def test_non_peek_fetch_sets_seen(target):
    fill(target, 2)
    c = target.login(select="INBOX")
    u, _ = c.ok("FETCH 1 (BODY[])")
    assert "\\Seen" in u[0] or any("\\Seen" in x for x in u), f"\\Seen not reported: {u}"
    u, _ = c.ok("FETCH 2 (BODY.PEEK[] RFC822.HEADER)")
    u, _ = c.ok("FETCH 1:2 (FLAGS)")
    assert "\\Seen" in u[0] and "\\Seen" not in u[1], u
    c.close()


# ---------------------------------------------------------------------------
# flags

def test_flags_are_copied_on_copy_and_move(target):
    fill(target, 2)
    c = target.login(select="INBOX")
    c.ok("STORE 1:2 +FLAGS (\\Flagged \\Answered $Forwarded $label1 NonJunk)")
    c.ok("COPY 1 Archive")
    caps = caps_of(c)
    if "MOVE" in caps:
        c.ok("MOVE 2 Trash")
    else:
        c.ok("COPY 2 Trash")
    for box in ("Archive", "Trash"):
        c.ok(f"EXAMINE {box}")
        u, _ = c.ok("FETCH 1 (FLAGS)")
        for f in ("\\Flagged", "\\Answered", "$Forwarded", "$label1", "NonJunk"):
            assert f.lower() in u[0].lower(), f"{f} lost on the way to {box}: {u[0]}"
    c.close()


def test_keywords_survive_reconnect(target):
    fill(target, 1)
    c = target.login(select="INBOX")
    c.ok("STORE 1 +FLAGS ($MDNSent Junk $label3)")
    c.close()
    c = target.login(select="INBOX")
    u, _ = c.ok("FETCH 1 (FLAGS)")
    for f in ("$MDNSent", "Junk", "$label3"):
        assert f.lower() in u[0].lower(), u
    c.close()


def test_flags_silent_silences_only_the_issuing_session(target):
    fill(target, 2)
    a = target.login(select="INBOX")
    b = target.login(select="INBOX")
    u, _ = a.ok("STORE 1 +FLAGS.SILENT (\\Flagged)")
    assert not fetch_lines(u), f"FLAGS.SILENT echoed: {u}"
    u, _ = b.ok("NOOP")
    assert any(re.match(r"\* 1 FETCH .*\\Flagged", x) for x in u), \
        f"other session was not told: {u}"
    a.close()
    b.close()


def test_pipelined_store_and_expunge_run_in_order(target):
    fill(target, 3)
    c = target.login(select="INBOX")
    us = uids(c)
    c.send((f"p1 UID STORE {us[0]} +FLAGS (\\Deleted)\r\n"
            "p2 EXPUNGE\r\n"
            f"p3 UID STORE {us[1]} +FLAGS (\\Deleted)\r\n"
            f"p4 UID STORE {us[2]} +FLAGS (\\Deleted)\r\n"
            f"p5 UID STORE {us[2]} -FLAGS (\\Deleted)\r\n"
            "p6 EXPUNGE\r\n"
            "p7 UID FETCH 1:* (UID FLAGS)\r\n").encode())
    seen, untagged = [], []
    while len(seen) < 7:
        r = c.read_response().decode()
        if r.startswith("p"):
            assert " OK" in r, r
            seen.append(r.split()[0])
        else:
            untagged.append((len(seen), r))
    assert seen == [f"p{i}" for i in range(1, 8)], seen
    u, _ = c.ok("UID FETCH 1:* (UID FLAGS)")
    left = fetch_lines(u)
    assert len(left) == 1 and f"UID {us[2]}" in left[0] and "\\Deleted" not in left[0], \
        "\n".join(f"{n} {r}" for n, r in untagged) + f"\nfinal: {left}"
    c.close()


# ---------------------------------------------------------------------------
# mailboxes

def test_uidvalidity_stable_and_uids_increase(target):
    c = target.login()
    u, _ = c.ok("STATUS INBOX (UIDVALIDITY UIDNEXT)")
    v1 = re.search(r"UIDVALIDITY (\d+)", u[0]).group(1)
    c.close()
    fill(target, 2)
    c = target.login(select="INBOX")
    us = uids(c)
    c.ok("UID STORE 1:* +FLAGS (\\Deleted)")
    c.ok("EXPUNGE")
    c.close()
    fill(target, 1)
    c = target.login()
    u, _ = c.ok("SELECT INBOX")
    assert re.search(rf"UIDVALIDITY {v1}\b", " ".join(u)), u
    assert uids(c)[0] > us[-1], "a UID was reused"
    c.close()


def test_inbox_is_case_insensitive(target):
    fill(target, 1)
    c = target.login()
    for name in ("inbox", "InBox", "INBOX"):
        u, t = c.ok(f"SELECT {name}")
        assert any(x.startswith("* 1 EXISTS") for x in u), u
    u, _ = c.ok('STATUS "iNbOx" (MESSAGES)')
    assert "MESSAGES 1" in u[0] and re.search(r'STATUS "?INBOX"? ', u[0]), u
    c.ok("SELECT Drafts")
    target_msg = make_message("to inbox", to=target.user)
    c.send(f"a1 APPEND inbox {{{len(target_msg)}}}\r\n")
    assert c.read_response().startswith(b"+")
    c.send(target_msg + b"\r\n")
    while not (r := c.read_response().decode()).startswith("a1 "):
        pass
    assert r.startswith("a1 OK"), r
    u, _ = c.ok('LIST "" "inbox"')
    assert any(re.search(r' "?INBOX"?$', x) for x in u), f"INBOX not normalised: {u}"
    u, t = c.command("DELETE INBOX")
    assert status_word(t) == "NO", t
    u, t = c.command("DELETE inbox")
    assert status_word(t) == "NO", t
    c.close()


def test_rename_inbox_moves_its_messages(target):
    fill(target, 2)
    c = target.login()
    c.ok("RENAME INBOX Old-Inbox")
    u, _ = c.ok("STATUS Old-Inbox (MESSAGES)")
    assert "MESSAGES 2" in u[0], u
    u, _ = c.ok("STATUS INBOX (MESSAGES)")
    assert "MESSAGES 0" in u[0], u
    u, _ = c.ok("SELECT INBOX")
    c.close()


def test_trailing_delimiter_is_tolerated(target):
    c = target.login()
    c.ok('CREATE "Projects/"')
    u, _ = c.ok('LIST "" "Projects"')
    assert any(re.search(r' "?Projects"?$', x) for x in u), u
    c.ok('SELECT "Drafts/"')
    c.ok('STATUS "Projects/" (MESSAGES)')
    c.ok('CREATE "Projects/2026"')
    u, _ = c.ok('LIST "" "Projects/%"')
    assert any("Projects/2026" in x for x in u), u
    c.close()


def test_list_root_and_namespace_delimiter(target):
    c = target.login()
    u, _ = c.ok('LIST "" ""')
    assert any(re.fullmatch(r'\* LIST \([^)]*\\Noselect[^)]*\) "/" ""', x) for x in u), u
    u, _ = c.ok('LIST "" "*"')
    names = [x for x in u if x.startswith("* LIST")]
    assert all(' "/" ' in x for x in names), names
    c.close()


def test_fifty_concurrent_connections_per_user(target):
    conns = []
    try:
        for i in range(50):
            c = target.connect(tls=True)
            c.read_response()
            c.ok(f"LOGIN {quote(target.user)} {quote(target.password)}")
            conns.append(c)
        for c in conns:
            c.ok("SELECT INBOX")
    finally:
        for c in conns:
            c.close()


def test_expunge_not_sent_during_sequence_fetch(target):
    fill(target, 3)
    a = target.login(select="INBOX")
    b = target.login(select="INBOX")
    b.ok("STORE 1 +FLAGS (\\Deleted)")
    b.ok("EXPUNGE")
    u, _ = a.ok("FETCH 1:3 (UID)")
    assert not [x for x in u if x.endswith(" EXPUNGE")], u
    u, _ = a.ok("SEARCH ALL")
    assert not [x for x in u if x.endswith(" EXPUNGE")], u
    u, _ = a.ok("NOOP")
    assert "* 1 EXPUNGE" in u, u
    a.close()
    b.close()


# ---------------------------------------------------------------------------
# stream handling (bytes after a command belong to the next one; pre-TLS input is
# discarded), literals, EXPUNGE timing, modified UTF-7 names, limits, errors

def test_starttls_discards_pipelined_plaintext(target):
    c = target.connect(tls=False)
    c.read_response()
    c.send(b"a1 STARTTLS\r\na2 CAPABILITY\r\n")
    r = c.read_response().decode()
    assert r.startswith("a1 OK"), r
    c.starttls()
    c.send(b"a3 NOOP\r\n")
    r = c.read_response().decode()
    assert r.startswith("a3 OK"), f"plaintext pipelined before TLS was executed: {r!r}"
    c.close()


def test_huge_literal_is_refused_before_continuation(target):
    c = target.connect(tls=True)
    c.read_response()
    c.send(b"a1 LOGIN {4294967296}\r\n")
    try:
        r = c.read_response().decode()
    except (ConnectionError, OSError):
        r = "* BYE (closed)"             # closing the connection is fine too
    assert not r.startswith("+"), "a 4 GiB literal got a continuation before login"
    assert r.startswith("a1 NO") or r.startswith("a1 BAD") or r.startswith("* BYE"), r
    c.close()
    c = target.login()
    c.send(b"a2 APPEND INBOX {99999999999}\r\n")
    r = c.read_response().decode()
    assert not r.startswith("+") and re.match(r"a2 (NO|BAD)", r), r
    c.ok("NOOP")
    c.close()


def test_long_uid_set(target):
    fill(target, 2)
    c = target.login(select="INBOX")
    # a 60 KB line of odd UIDs, as clients send for big sparse selections
    big = ",".join(str(i) for i in range(1, 40000, 2))[:60000].rsplit(",", 1)[0]
    u, t = c.ok(f"UID FETCH {big} (FLAGS)")
    assert len(fetch_lines(u)) == 1, u                       # only UID 1 exists of the odd ones
    c.close()


def test_modified_utf7_names(target):
    c = target.login()
    c.ok('CREATE "&AOk-t&AOk-"')                 # "été"
    c.ok('CREATE "R&-D"')                         # "R&D"
    u, _ = c.ok('LIST "" "*"')
    names = " ".join(u)
    assert "&AOk-t&AOk-" in names and "R&-D" in names, u
    u, t = c.command('CREATE "bad&Jjo"')
    assert status_word(t) in ("NO", "BAD"), f"invalid mUTF-7 accepted: {t}"
    c.ok('SELECT "&AOk-t&AOk-"')
    c.close()


def test_examine_is_read_only(target):
    fill(target, 1)
    c = target.login()
    u, t = c.ok("EXAMINE INBOX")
    assert "[READ-ONLY]" in t.upper(), t
    c.ok("FETCH 1 (BODY[])")
    c.command("STORE 1 +FLAGS (\\Flagged)")          # NO, or OK and ignored
    c.ok("SELECT INBOX")
    u, _ = c.ok("FETCH 1 (FLAGS)")
    assert "\\Seen" not in u[0] and "\\Flagged" not in u[0], u
    c.close()


def test_trycreate_and_nonexistent(target):
    fill(target, 1)
    c = target.login(select="INBOX")
    u, t = c.command("COPY 1 NoSuchBox")
    assert status_word(t) == "NO" and "[TRYCREATE]" in t.upper(), t
    msg = make_message("x", to=target.user)
    c.send(f"a1 APPEND NoSuchBox {{{len(msg)}}}\r\n")
    r = c.read_response().decode()
    if r.startswith("+"):
        c.send(msg + b"\r\n")
        r = c.read_response().decode()
    assert r.startswith("a1 NO") and "[TRYCREATE]" in r.upper(), r
    u, t = c.command("SELECT NoSuchBox")
    assert status_word(t) == "NO", t
    c.close()


def test_other_sessions_see_appends_and_expunges(target):
    fill(target, 4)
    a = target.login(select="INBOX")
    b = target.login(select="INBOX")
    us = uids(b)
    a.ok(f"UID STORE {us[1]},{us[2]} +FLAGS (\\Deleted)")
    a.ok("EXPUNGE")
    target.append("INBOX", make_message("new one", to=target.user))
    u, _ = b.ok("NOOP")
    exp = [x for x in u if x.endswith(" EXPUNGE")]
    assert sorted(exp) in (["* 2 EXPUNGE", "* 2 EXPUNGE"], ["* 2 EXPUNGE", "* 3 EXPUNGE"]), u
    assert "* 3 EXISTS" in u, u
    assert uids(b)[:2] == [us[0], us[3]] and len(uids(b)) == 3
    a.close()
    b.close()


def test_logout(target):
    c = target.login()
    u, t = c.ok("LOGOUT")
    assert any(x.startswith("* BYE") for x in u), u
    c.close()


def test_login_password_with_quotes_and_backslash(imap_server):
    from .conftest import External
    if isinstance(imap_server, External):
        pytest.skip("needs a user with a special password")
    pw = 'p"a\\ss w\u00f6rd'
    user = imap_server.add_user("special.pw@example.test", password=pw)
    from .replay import Target
    t = Target("127.0.0.1", imap_server.port("imap"), imap_server.port("imaps"), user, pw)
    c = t.connect(tls=True)
    c.read_response()
    # Thunderbird: quoted with \ and " escaped (its fallback path is ASCII only,
    # so the quoted form here carries UTF-8 as imaplib would)
    u, tg = c.command(f"LOGIN {quote(user)} {quote(pw)}")
    assert status_word(tg) == "OK", tg
    c.close()
    c = t.connect(tls=True)
    c.read_response()
    u, tg = sync_literal_cmd(c, ["LOGIN ", user.encode(), " ", pw.encode()])
    assert status_word(tg) == "OK", tg
    c.close()


def test_authenticate_initial_response_as_literal(target):
    c = target.login()
    caps = caps_of(c)
    c.close()
    if "SASL-IR" not in caps:
        pytest.skip("server does not advertise SASL-IR")
    ir = base64.b64encode(f"\0{target.user}\0{target.password}".encode())
    c = target.connect(tls=True)
    c.read_response()
    u, t = sync_literal_cmd(c, ["AUTHENTICATE PLAIN ", ir])
    assert status_word(t) == "OK", t
    c.close()
    if "LITERAL+" in caps:
        c = target.connect(tls=True)
        c.read_response()
        c.send(b"a1 AUTHENTICATE PLAIN {%d+}\r\n%s\r\n" % (len(ir), ir))
        r = c.read_response().decode()
        while r.startswith("* "):
            r = c.read_response().decode()
        assert r.startswith("a1 OK"), r
        c.close()
