"""mailctl's outbound verbs end to end: queue list (text and --json), show,
flush, delete, hold, release, their errors and exit codes; dkim generate
(key files 0600, the printed DNS record) and dns (BIND zone-file lines:
MX, SPF, DKIM, DMARC, RFC 6186 SRV). Queue entries in chosen states come
from the store's own test helper (build/.../tests/test_store_queue in its
helper mode), so these tests need no delivery daemon."""
import json
import os
import re
import stat
import subprocess

import pytest

from conftest import BIN

HELPER = os.path.join(os.path.dirname(BIN), "tests", "test_store_queue")

MSG = (b"From: alice@example.test\r\nTo: bob@remote.test\r\n"
       b"Subject: queued\r\nMessage-ID: <q1@example.test>\r\n\r\nbody\r\n")


def helper(pr, *args, input=b""):
    r = subprocess.run([HELPER, args[0], pr.data_dir, *args[1:]], input=input,
                       capture_output=True, timeout=60)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r.stdout.decode().strip()


def queue_add(pr, sender, *rcpts, msg=MSG):
    return helper(pr, "add", sender, *rcpts, input=msg)


def queue_json(pr):
    r = pr.mailctl("queue", "list", "--json")
    return json.loads(r.stdout)


def assert_fail(r, code=1, text=None):
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert lines and lines[0].startswith("mailctl: "), r.stderr
    if text:
        assert text in r.stderr, r.stderr


@pytest.fixture
def q(pr):
    pr.add_user("alice@example.test")
    return pr


def test_list_empty(q):
    assert q.mailctl("queue", "list").stdout == ""
    assert queue_json(q) == []


def test_list_text_and_json(q):
    a = queue_add(q, "alice@example.test", "bob@remote.test",
                  "carol@other.test")
    b = queue_add(q, "", "x@remote.test")
    assert re.fullmatch(r"[0-9A-F]{10}", a), a
    helper(q, "result", a, "0", "deferred", "4.2.0", "451 4.2.0 try later",
           "mx.remote.test[127.0.0.2]:25")
    text = q.mailctl("queue", "list").stdout.splitlines()
    assert len(text) == 3
    f = text[0].split(" ", 6)
    assert f[0] == a and f[2] == "<alice@example.test>"
    assert f[3] == "bob@remote.test" and f[4] == "deferred" and f[5] == "1"
    assert f[6] == "451 4.2.0 try later"
    assert text[1].split()[3:6] == ["carol@other.test", "pending", "0"]
    assert text[2].split()[2] == "<>"

    j = queue_json(q)
    assert [m["id"] for m in j] == [a, b]
    m = j[0]
    assert m["sender"] == "alice@example.test" and m["held"] is False
    assert m["size"] == len(MSG)
    r0, r1 = m["recipients"]
    assert r0["address"] == "bob@remote.test" and r0["state"] == "deferred"
    assert r0["attempts"] == 1 and r0["status"] == "4.2.0"
    assert r0["remote"] == "mx.remote.test[127.0.0.2]:25"
    assert r1["state"] == "pending" and r1["attempts"] == 0
    assert j[1]["sender"] == ""


def test_show(q):
    a = queue_add(q, "alice@example.test", "bob@remote.test")
    helper(q, "result", a, "0", "deferred", "4.4.1", "connection refused",
           "mx.remote.test[127.0.0.2]:25")
    out = q.mailctl("queue", "show", a).stdout
    assert f"id: {a}" in out
    assert "sender: <alice@example.test>" in out
    assert "bob@remote.test deferred attempts=1" in out
    assert "history:" in out
    assert re.search(r"bob@remote.test deferred 4\.4\.1 via "
                     r"mx\.remote\.test\[127\.0\.0\.2\]:25: connection refused",
                     out), out
    assert "headers:\nFrom: alice@example.test\nTo: bob@remote.test\n" in out
    assert "body" not in out.split("headers:")[1]
    # Lower case works too.
    assert q.mailctl("queue", "show", a.lower()).stdout == out


def test_hold_release_flush_delete(q):
    a = queue_add(q, "alice@example.test", "bob@remote.test")
    b = queue_add(q, "alice@example.test", "carol@remote.test")
    q.mailctl("queue", "hold", a)
    j = {m["id"]: m for m in queue_json(q)}
    assert j[a]["held"] is True and j[a]["next"] == 0
    assert j[b]["held"] is False
    assert " held " in q.mailctl("queue", "list").stdout.splitlines()[0]
    assert "held: yes" in q.mailctl("queue", "show", a).stdout
    q.mailctl("queue", "release", a)
    assert queue_json(q)[0]["held"] is False

    helper(q, "result", b, "0", "deferred", "4.2.0", "later", "x[1.2.3.4]:25")
    before = {m["id"]: m for m in queue_json(q)}[b]
    assert before["next"] > before["arrival"] + 1000
    q.mailctl("queue", "flush", b)
    after = {m["id"]: m for m in queue_json(q)}[b]
    assert after["next"] <= after["arrival"] + 60
    helper(q, "result", b, "0", "deferred", "4.2.0", "later", "x[1.2.3.4]:25")
    q.mailctl("queue", "flush")
    assert {m["id"]: m for m in queue_json(q)}[b]["next"] < before["next"]

    q.mailctl("queue", "delete", a)
    assert [m["id"] for m in queue_json(q)] == [b]
    assert not os.path.exists(os.path.join(q.data_dir, "queue", a))
    # Its history stays for a while.
    out = q.mailctl("queue", "show", a).stdout
    assert "no longer in the queue" in out
    assert "deleted by the administrator" in out


def test_errors(q):
    for verb in ("show", "delete", "hold", "release", "flush"):
        assert_fail(q.mailctl("queue", verb, "ABC", check=False),
                    text="no queue entry 'ABC'")
        assert_fail(q.mailctl("queue", verb, "xyz!", check=False),
                    text="invalid queue ID")
    for args in (("queue", "show"), ("queue", "delete"),
                 ("queue", "list", "extra"), ("queue", "bogus"),
                 ("queue", "list", "--bogus"), ("dns",),
                 ("dkim", "generate")):
        assert_fail(q.mailctl(*args, check=False), code=2)
    assert q.mailctl("queue", "--help").stdout.count("mailctl queue") == 6


def test_dkim_generate_and_dns(q):
    r = q.mailctl("dkim", "generate", "example.test", "--algorithm", "both")
    lines = r.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(
        'postroom._domainkey.example.test. 3600 IN TXT "v=DKIM1; k=rsa; p=')
    assert lines[1].startswith(
        'postroom-ed25519._domainkey.example.test. 3600 IN TXT '
        '"v=DKIM1; k=ed25519; p=')
    kdir = os.path.join(q.data_dir, "dkim", "example.test")
    for name in ("postroom.private", "postroom-ed25519.private"):
        st = os.stat(os.path.join(kdir, name))
        assert stat.S_IMODE(st.st_mode) == 0o600
    # Never replaced.
    assert_fail(q.mailctl("dkim", "generate", "example.test", check=False),
                text="exists already")
    assert_fail(q.mailctl("dkim", "generate", "remote.test", check=False),
                text="not local")
    assert_fail(q.mailctl("dkim", "generate", "example.test",
                          "--algorithm", "dsa", check=False), code=2)

    out = q.mailctl("dns", "example.test").stdout.splitlines()
    zone = [ln for ln in out if not ln.startswith(";")]
    for ln in zone:
        assert re.match(r"^\S+\. 3600 IN (MX|TXT|SRV) ", ln), ln
    assert "example.test. 3600 IN MX 10 mail.example.test." in zone
    assert 'example.test. 3600 IN TXT "v=spf1 mx -all"' in zone
    assert lines[0] in zone and lines[1] in zone
    assert any(ln.startswith('_dmarc.example.test. 3600 IN TXT "v=DMARC1;')
               for ln in zone)
    sub = q.port("submission")
    assert (f"_submission._tcp.example.test. 3600 IN SRV 0 1 {sub} "
            "mail.example.test.") in zone
    assert (f"_imaps._tcp.example.test. 3600 IN SRV 0 1 {q.port('imaps')} "
            "mail.example.test.") in zone
    assert (f"_pop3s._tcp.example.test. 3600 IN SRV 0 1 {q.port('pop3s')} "
            "mail.example.test.") in zone
    # TXT strings are at most 255 octets each.
    for ln in zone:
        for s in re.findall(r'"((?:[^"\\]|\\.)*)"', ln):
            assert len(s) <= 255
    assert_fail(q.mailctl("dns", "remote.test", check=False),
                text="not local")


def test_dns_without_keys_and_listeners(q):
    q.write_config(imap_listen="", pop3_listen="")
    out = q.mailctl("dns", "example.test").stdout
    assert "; no DKIM key for example.test" in out
    assert "_imap._tcp.example.test. 3600 IN SRV 0 0 0 .\n" in out
    assert "_pop3._tcp.example.test. 3600 IN SRV 0 0 0 .\n" in out
