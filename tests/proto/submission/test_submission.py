"""smtpd's side of outbound mail, end to end with smtplib, swaks and raw
SMTP: remote recipients of authenticated sessions are queued (local ones
delivered, one file for both), DSN offered on the submission listeners only
and its parameters stored, Message-ID and Date added when missing, DKIM
signatures of both algorithms verified by dkimpy (its DNS answered from
`mailctl dns`), the hop limit, the per-user submission rate, the MX still
refusing to relay, forwarding through an alias with an SRS sender, and a
bounce to that SRS address routed back to the original sender."""
import json
import os
import re
import smtplib
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "smtp"))
from conftest import PASSWORD, client_tls_context  # noqa: E402
from smtp_testlib import (ALICE, BOB, Raw, find, message,  # noqa: E402
                          read_file, send_raw, setup_users,
                          submission_session, token)

REMOTE = "friend@remote.test"


@pytest.fixture
def sub(pr):
    setup_users(pr)
    pr.start("smtpd")
    return pr


def queue(pr):
    return json.loads(pr.mailctl("queue", "list", "--json").stdout)


def queue_file(pr, qid):
    return read_file(os.path.join(pr.data_dir, "queue", qid))


def smtplib_send(pr, frm, rcpts, msg, key="submission", user=ALICE,
                 mail_options=(), rcpt_options=()):
    with smtplib.SMTP("127.0.0.1", pr.port(key), timeout=20) as c:
        c.starttls(context=client_tls_context())
        c.login(user, PASSWORD)
        return c.sendmail(frm, rcpts, msg, mail_options=list(mail_options),
                          rcpt_options=list(rcpt_options))


def test_mixed_local_and_remote(sub):
    tok = token()
    msg = message(tok, to=REMOTE)
    assert smtplib_send(sub, ALICE, [REMOTE, BOB, "Other@Remote2.test"],
                        msg) == {}
    q = queue(sub)
    assert len(q) == 1
    m = q[0]
    assert m["sender"] == ALICE and m["auth_user"] == ALICE
    # Remote local parts keep their case (RFC 5321 2.4).
    assert sorted(r["address"] for r in m["recipients"]) == \
        ["Other@Remote2.test", "friend@remote.test"]
    assert all(r["state"] == "pending" for r in m["recipients"])
    # One file for both: the queue's is the maildir's, hard-linked.
    local = find(sub, BOB, tok)
    assert len(local) == 1
    qpath = os.path.join(sub.data_dir, "queue", m["id"])
    assert os.stat(qpath).st_ino == os.stat(local[0]).st_ino
    data = read_file(qpath)
    assert tok.encode() in data and b" with ESMTPSA id " in data
    # A purely local message does not touch the queue.
    smtplib_send(sub, ALICE, [BOB], message(token()))
    assert len(queue(sub)) == 1
    assert re.search(r"local=1 remote=2 queue=" + m["id"], sub.log("smtpd"))


def test_swaks_smtps(sub):
    tok = token()
    r = subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{sub.port('smtps')}", "--tlsc",
         "--auth", "PLAIN", "--auth-user", ALICE, "--auth-password", PASSWORD,
         "--from", ALICE, "--to", REMOTE, "--header", f"Subject: {tok}",
         "--body", "hello from swaks"], capture_output=True, text=True,
        timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    q = queue(sub)
    assert [x["recipients"][0]["address"] for x in q] == [REMOTE]
    assert tok.encode() in queue_file(sub, q[0]["id"])


def test_message_id_and_date_added(sub):
    tok = token()
    bare = (f"From: <{ALICE}>\r\nTo: <{REMOTE}>\r\nSubject: {tok}\r\n"
            "\r\nno id, no date\r\n")
    smtplib_send(sub, ALICE, [REMOTE], bare)
    data = queue_file(sub, queue(sub)[0]["id"])
    head = data.split(b"\r\n\r\n")[0].decode()
    assert re.search(r"^Message-ID: <[^@>]+@mail\.example\.test>\r?$", head,
                     re.M), head
    assert re.search(r"^Date: \w{3}, \d{1,2} \w{3} \d{4} ", head, re.M)
    # Present ones are kept as they are, never doubled.
    tok2 = token()
    full = message(tok2, to=REMOTE,
                   extra="Date: Mon, 7 Dec 2026 10:00:00 +0000\r\n")
    smtplib_send(sub, ALICE, [REMOTE], full)
    data = [queue_file(sub, m["id"]) for m in queue(sub)
            if tok2.encode() in queue_file(sub, m["id"])][0]
    head = data.split(b"\r\n\r\n")[0].decode()
    assert head.count("Message-ID:") == 1 and f"<{tok2}@example.test>" in head
    assert head.count("Date:") == 1
    # The MX adds nothing: the message is stored as received.
    tok3 = token()
    r = Raw.connect(sub, "smtp")
    r.greeting()
    r.ehlo()
    send_raw(r, "x@remote.test", [BOB],
             f"From: <x@remote.test>\r\nSubject: {tok3}\r\n\r\nhi\r\n")
    r.expect("QUIT", 221)
    head = read_file(find(sub, BOB, tok3)[0]).split(b"\r\n\r\n")[0]
    assert b"Message-ID" not in head and b"\r\nDate:" not in head


def test_dkim_signed_and_verified(sub):
    sub.mailctl("dkim", "generate", "example.test", "--algorithm", "both")
    dns = {}
    for ln in sub.mailctl("dns", "example.test").stdout.splitlines():
        m = re.match(r'^(\S+)\. 3600 IN TXT (.*)$', ln)
        if m and "._domainkey." in m.group(1):
            dns[m.group(1)] = "".join(re.findall(r'"([^"]*)"', m.group(2)))
    assert len(dns) == 2
    tok = token()
    smtplib_send(sub, ALICE, [REMOTE, BOB], message(tok, to=REMOTE,
                 body="Body with trailing space \r\n\r\n\r\n"))
    data = queue_file(sub, queue(sub)[0]["id"])
    assert data.count(b"DKIM-Signature:") == 2
    script = (
        "import sys, json, dkim\n"
        "recs = json.loads(sys.argv[1])\n"
        "def dns(name, timeout=5):\n"
        "    v = recs.get(name.decode().rstrip('.'))\n"
        "    return v.encode() if v else None\n"
        "msg = sys.stdin.buffer.read()\n"
        "d = dkim.DKIM(msg)\n"
        "out = []\n"
        "for i in range(2):\n"
        "    out.append(bool(d.verify(idx=i, dnsfunc=dns)))\n"
        "print(json.dumps(out))\n")
    r = subprocess.run(["/usr/bin/python3", "-c", script, json.dumps(dns)],
                       input=data, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [True, True], r.stdout
    sigs = re.findall(rb"DKIM-Signature:.*?(?=\r\n[^ \t])", data, re.S)
    algs = sorted(re.search(rb"a=([\w-]+);", s).group(1) for s in sigs)
    assert algs == [b"ed25519-sha256", b"rsa-sha256"]
    assert all(b"d=example.test;" in s for s in sigs)
    assert re.search(r"dkim=2 result=ok", sub.log("smtpd"))
    # The local copy is the same file, signed too.
    assert read_file(find(sub, BOB, tok)[0]) == data


def test_dsn_parameters(sub):
    r = Raw.connect(sub, "smtp")
    r.greeting()
    assert "DSN" not in r.ehlo()
    r.expect("QUIT", 221)
    r = submission_session(sub, "submission")
    assert "DSN" in r.ehlo()
    r.expect(f"MAIL FROM:<{ALICE}> RET=HDRS ENVID=abc+2Bdef", 250)
    r.expect(f"RCPT TO:<{REMOTE}> NOTIFY=SUCCESS,FAILURE "
             "ORCPT=rfc822;Friend+2B1@remote.test", 250)
    r.expect("RCPT TO:<x@remote2.test> NOTIFY=NEVER", 250)
    for bad in ("NOTIFY=NEVER,SUCCESS", "NOTIFY=SOMETIMES", "ORCPT=x",
                "ORCPT=rfc822;a+zz", "NOTIFY=DELAY NOTIFY=DELAY"):
        c, text = r.cmd(f"RCPT TO:<y@remote.test> {bad}")
        assert c == 555, (bad, c, text)
    r.expect(f"RCPT TO:<{BOB}> NOTIFY=NEVER", 250)   # local: accepted
    r.expect("DATA", 354)
    r.send(message(token(), to=REMOTE).encode() + b"\r\n.\r\n")
    assert r.reply()[0] == 250
    c, text = r.cmd(f"MAIL FROM:<{ALICE}> RET=ALL")
    assert c == 555
    r.expect("QUIT", 221)
    m = queue(sub)[0]
    assert m["ret"] == "HDRS" and m["envid"] == "abc+def"
    r0, r1 = m["recipients"]
    assert r0["notify"] == "SUCCESS,FAILURE"
    assert r0["orcpt"] == "rfc822;Friend+1@remote.test"
    assert r1["notify"] == "NEVER" and r1["orcpt"] == ""


def test_mx_refuses_relay(sub):
    r = Raw.connect(sub, "smtp")
    r.greeting()
    r.ehlo()
    r.expect("MAIL FROM:<x@remote.test>", 250)
    c, text = r.cmd(f"RCPT TO:<{REMOTE}>")
    assert (c, text[0][:5]) == (554, "5.7.1")
    r.expect("QUIT", 221)
    assert queue(sub) == []


def test_hop_limit(sub):
    r = submission_session(sub, "smtps")
    hops = "".join(f"Received: from h{i}.test by h{i + 1}.test; "
                   "Mon, 7 Dec 2026 10:00:00 +0000\r\n" for i in range(49))
    # 49 in the message and ours: 50, accepted.
    send_raw(r, ALICE, [REMOTE], hops + message(token(), to=REMOTE))
    # One more: refused as a loop, nothing stored.
    tok = token()
    send_raw(r, ALICE, [REMOTE, BOB], "Received: from x by y; Mon, 7 Dec "
             "2026 10:00:00 +0000\r\n" + hops + message(tok, to=REMOTE),
             final=554)
    r.expect("QUIT", 221)
    assert len(queue(sub)) == 1
    assert find(sub, BOB, tok) == []


def test_rate_limit(pr):
    setup_users(pr)
    pr.write_config(submission_rate_limit="2/h")
    pr.start("smtpd")
    r = submission_session(pr, "submission")
    send_raw(r, ALICE, [REMOTE], message(token(), to=REMOTE))
    send_raw(r, ALICE, [REMOTE, "b@remote.test"], message(token(), to=REMOTE))
    # Local mail never counts; it is never refused either.
    for _ in range(3):
        send_raw(r, ALICE, [BOB], message(token()))
    r.expect(f"MAIL FROM:<{ALICE}>", 250)
    c, text = r.cmd(f"RCPT TO:<{REMOTE}>")
    assert (c, text[0][:5]) == (452, "4.7.1"), text
    r.expect(f"RCPT TO:<{BOB}>", 250)
    r.expect("RSET", 250)
    r.expect("QUIT", 221)
    # Another user has their own budget.
    r = submission_session(pr, "submission", user=BOB)
    send_raw(r, BOB, [REMOTE], message(token(), frm=BOB, to=REMOTE))
    r.expect("QUIT", 221)
    assert len(queue(pr)) == 3


def test_forward_through_alias_with_srs(sub):
    sub.mailctl("alias", "add", "info@example.test",
                f"{ALICE},Someone@Elsewhere.test")
    tok = token()
    r = Raw.connect(sub, "smtp")
    r.greeting()
    r.ehlo()
    send_raw(r, "sender@orig.test", ["info@example.test"],
             f"From: <sender@orig.test>\r\nSubject: {tok}\r\n\r\nhi\r\n")
    r.expect("QUIT", 221)
    assert len(find(sub, ALICE, tok)) == 1
    q = queue(sub)
    assert len(q) == 1
    m = q[0]
    assert m["auth_user"] == ""
    srs = m["sender"]
    assert re.fullmatch(r"SRS0=[A-Z2-7]{6}=[A-Z2-7]{2}=orig\.test="
                        r"sender@example\.test", srs), srs
    (rc,) = m["recipients"]
    assert rc["address"] == "someone@elsewhere.test"
    assert rc["orcpt"] == "rfc822;info@example.test"
    # Unauthenticated mail to a remote address the sender chose: refused.
    r = Raw.connect(sub, "smtp")
    r.greeting()
    r.ehlo()
    r.expect("MAIL FROM:<sender@orig.test>", 250)
    c, _ = r.cmd("RCPT TO:<someone@elsewhere.test>")
    assert c == 554
    # A bounce to the SRS address goes back to the original sender.
    r.expect("RSET", 250)
    send_raw(r, "", [srs], "From: MAILER-DAEMON@elsewhere.test\r\n"
             f"Subject: Undelivered {tok}\r\n\r\nbounce\r\n")
    # A forged or mangled one is unknown.
    r.expect("MAIL FROM:<>", 250)
    forged = srs[:5] + ("AAAAAA" if srs[5:11] != "AAAAAA" else "BBBBBB") + \
        srs[11:]
    c, text = r.cmd(f"RCPT TO:<{forged}>")
    assert (c, text[0][:5]) == (550, "5.1.1")
    r.expect("QUIT", 221)
    q = [x for x in queue(sub) if x["id"] != m["id"]]
    assert len(q) == 1
    assert q[0]["sender"] == ""
    assert [x["address"] for x in q[0]["recipients"]] == ["sender@orig.test"]
    # An authenticated user's mail to the alias keeps the user as sender.
    smtplib_send(sub, ALICE, ["info@example.test"], message(token()))
    senders = sorted(x["sender"] for x in queue(sub))
    assert ALICE in senders
