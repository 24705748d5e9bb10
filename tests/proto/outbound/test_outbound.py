"""mtad end to end on the loopback rig (rig.py): messages are put into the
queue with the store's queue API (the test_queue_inject helper, built with
the unit tests), mtad delivers them to SMTP sinks found through a test DNS
server. Waits are for events, bounded only so that nothing hangs; mtad's
retry bounds are 1-2 s here."""
import email
import email.policy
import os
import shutil
import signal
import smtplib
import subprocess
import time

import pytest

from .rig import Rig, make_ca

from lib import instance as harness  # noqa: E402


HELPER = os.path.join(os.path.dirname(harness.BIN), "tests", "test_queue_inject")
ALICE = "alice@example.test"

pytestmark = pytest.mark.skipif(
    not os.access(os.path.join(harness.BIN, "mtad"), os.X_OK)
    or not os.access(HELPER, os.X_OK), reason="mtad or its test helper is not built")


class Out:
    def __init__(self, **config):
        self.dns_port = harness.free_port()
        self.smtp_port = harness.free_port()
        self.rig = Rig(self.dns_port, self.smtp_port)
        base = {
            "dns_servers": f"127.0.0.1:{self.dns_port}",
            "outbound_port": str(self.smtp_port),
            "queue_retry_min": "1s",
            "queue_retry_max": "2s",
            "outbound_timeout": "30s",
        }
        base.update(config)
        self.inst = harness.Instance(extra_config=base)
        self.inst.add_user(ALICE)

    def inject(self, sender, rcpts, body=None, notify="-", ret="-", envid=None,
               subject="test"):
        body = body or (f"From: <{sender}>\r\nTo: <{rcpts.split(',')[0].split('|')[0]}>\r\n"
                        f"Subject: {subject}\r\nMessage-ID: <{time.time()}@example.test>\r\n"
                        f"\r\nHello.\r\n.leading dot line\r\n")
        args = [HELPER, "inject", self.inst.data_dir, sender, rcpts, notify, ret]
        if envid:
            args.append(envid)
        r = subprocess.run(args, input=body.encode(), capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout.decode().split()[1]

    def admin(self, verb, qid):
        r = subprocess.run([HELPER, verb, self.inst.data_dir, qid], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stderr

    def queue(self):
        r = subprocess.run([HELPER, "list", self.inst.data_dir], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        rcpts = [ln.split("\t") for ln in r.stdout.splitlines() if ln.startswith("rcpt\t")]
        return rcpts

    def wait_queue_empty(self, timeout=60):
        deadline = time.monotonic() + timeout
        while self.queue():
            assert time.monotonic() < deadline, f"queue not empty: {self.queue()}\n{self.log()}"
            time.sleep(0.1)

    def start(self):
        self.inst.start("mtad")

    def log(self):
        return self.inst.log("mtad")

    def wait_log(self, text, timeout=60, count=1):
        deadline = time.monotonic() + timeout
        while self.log().count(text) < count:
            assert time.monotonic() < deadline, f"no {text!r} in log:\n{self.log()[-4000:]}"
            time.sleep(0.05)

    def inbox(self, address=ALICE):
        out = []
        for p in sorted(self.inst.maildir_files(address)):
            with open(p, "rb") as fh:
                out.append(email.message_from_bytes(fh.read(), policy=email.policy.compat32))
        return out

    def wait_inbox(self, n=1, address=ALICE, timeout=60):
        deadline = time.monotonic() + timeout
        while len(self.inst.maildir_files(address)) < n:
            assert time.monotonic() < deadline, f"no DSN in the inbox:\n{self.log()[-4000:]}"
            time.sleep(0.05)
        return self.inbox(address)

    def close(self):
        try:
            self.inst.stop_all()
        finally:
            self.rig.stop()


@pytest.fixture
def out(request):
    made = []

    def make(**config):
        o = Out(**config)
        made.append(o)
        return o
    yield make
    for o in made:
        o.close()


def report_parts(msg):
    """(action-per-recipient dict, the per-message fields) of a DSN."""
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    parts = msg.get_payload()
    assert parts[1].get_content_type() == "message/delivery-status"
    fields = parts[1].get_payload()
    per = {}
    for f in fields[1:]:
        per[f["Final-Recipient"].split(";", 1)[1].strip()] = f
    return per, fields[0], parts


def test_mx_fallback_and_tls(out):
    o = out()
    o.rig.dns.mx("remote.test", (10, "mx1.remote.test", ["127.0.0.2"]),
                  (20, "mx2.remote.test", ["127.0.0.3"]))
    # mx1 has no sink (connection refused); mx2 offers STARTTLS.
    o.rig.sink("127.0.0.3", starttls=(o.inst.cert, o.inst.key))
    o.start()
    o.inject(ALICE, "ok-1@remote.test,ok-2@remote.test")
    o.rig.wait(lambda d: len(d) >= 1, what="delivery via mx2")
    d = o.rig.deliveries[0]
    assert d["ip"] == "127.0.0.3"
    assert sorted(d["rcpts"]) == ["ok-1@remote.test", "ok-2@remote.test"]
    assert d["tls"] and d["tls"].startswith("TLS")
    assert b"\r\n.leading dot line\r\n" in d["data"]       # dot-stuffing undone
    o.wait_queue_empty()
    log = o.log()
    assert "host-failed remote=mx1.remote.test[127.0.0.2]" in log
    assert "delivery rcpt=ok-1@remote.test relay=mx2.remote.test[127.0.0.3]:" in log
    assert "status=sent dsn=2.0.0" in log and "tls=TLSv1" in log
    assert len(o.rig.deliveries) == 1
    # One mtad per data_dir: a second one refuses to start.
    r = subprocess.run([os.path.join(harness.BIN, "mtad"), "-c", o.inst.conf],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "another mtad is running" in r.stderr


def test_retry_then_success_exactly_once(out):
    o = out()
    o.rig.dns.mx("retry.test", (10, "mx.retry.test", ["127.0.0.2"]))
    o.rig.sink("127.0.0.2")
    o.start()
    o.inject(ALICE, "temp-1@retry.test")
    o.inject(ALICE, "dataclose-1@retry.test")
    o.rig.wait(lambda d: len(d) >= 2, what="both after a retry")
    o.wait_queue_empty()
    got = sorted(r for d in o.rig.deliveries for r in d["rcpts"])
    assert got == ["dataclose-1@retry.test", "temp-1@retry.test"]
    log = o.log()
    assert "rcpt=temp-1@retry.test relay=mx.retry.test[127.0.0.2]" in log
    assert "status=deferred dsn=4.3.0" in log
    assert log.count("rcpt=temp-1@retry.test") == 2
    assert log.count("rcpt=dataclose-1@retry.test") == 2
    assert not o.inbox()                     # no DSN for a success


def test_bounce_dsn_to_local_sender(out):
    o = out()
    o.rig.dns.mx("remote.test", (10, "mx.remote.test", ["127.0.0.2"]))
    o.rig.dns.mx("other.test", (10, "mx.other.test", ["127.0.0.2"]))
    o.rig.sink("127.0.0.2")
    o.start()
    o.inject(ALICE, "reject-1@remote.test|rfc822;Reject-1@Remote.test,ok-3@remote.test,"
             "datafail-9@other.test", envid="ENV-1")
    msgs = o.wait_inbox(1)
    o.wait_queue_empty()
    m = msgs[0]
    assert m["From"] == "Mail Delivery System <MAILER-DAEMON@mail.example.test>"
    assert m["Subject"] == "Undelivered Mail Returned to Sender"
    per, head, parts = report_parts(m)
    assert head["Reporting-MTA"] == "dns; mail.example.test"
    assert head["Original-Envelope-Id"] == "ENV-1"
    f = per["reject-1@remote.test"]
    assert f["Action"] == "failed" and f["Status"] == "5.1.1"
    assert f["Original-Recipient"] == "rfc822;Reject-1@Remote.test"
    assert f["Remote-MTA"].startswith("dns; mx.remote.test[127.0.0.2]")
    assert f["Diagnostic-Code"] == "smtp; 550 5.1.1 no such user here"
    assert "ok-3@remote.test" not in per
    # The whole original comes back (no RET given, a failure).
    assert parts[2].get_content_type() == "message/rfc822"
    # datafail: refused after the data (other domain, maybe another DSN).
    o.wait_inbox(1)
    everything = {r: f for m in o.inbox() for r, f in report_parts(m)[0].items()}
    assert everything["datafail-9@other.test"]["Status"] == "5.6.0"
    assert [d["rcpts"] for d in o.rig.deliveries] == [["ok-3@remote.test"]]


def test_null_mx_fails_at_once(out):
    o = out()
    o.rig.dns.mx("nullmx.test", (0, "", []))
    o.start()
    o.inject(ALICE, "someone@nullmx.test")
    m = o.wait_inbox(1)[0]
    per, _, _ = report_parts(m)
    assert per["someone@nullmx.test"]["Status"] == "5.1.10"
    assert "null MX" in per["someone@nullmx.test"]["Diagnostic-Code"]
    o.wait_queue_empty()
    assert "status=bounced dsn=5.1.10" in o.log()


def test_loop_greeting_and_own_address(out):
    port_holder = harness.free_port()
    o = out()
    o.inst.write_config(smtp_listen=f"127.0.0.5:{o.smtp_port}",
                        submission_listen=f"127.0.0.1:{port_holder}")
    o.rig.dns.mx("loop.test", (10, "mx.loop.test", ["127.0.0.2"]))
    o.rig.sink("127.0.0.2", name="mail.example.test")      # greets with our name
    o.rig.dns.mx("self.test", (10, "mx.self.test", ["127.0.0.5"]))
    o.start()
    o.inject(ALICE, "x@loop.test")
    o.inject(ALICE, "y@self.test")
    o.wait_inbox(2)
    o.wait_queue_empty()
    per = {r: f for m in o.inbox() for r, f in report_parts(m)[0].items()}
    assert per["x@loop.test"]["Status"] == "5.4.6"
    assert per["y@self.test"]["Status"] == "5.4.6"
    assert "loop-detected" in o.log()
    assert not o.rig.deliveries


def test_no_dsn_about_null_sender(out):
    o = out()
    o.rig.dns.mx("remote.test", (10, "mx.remote.test", ["127.0.0.2"]))
    o.rig.sink("127.0.0.2")
    o.start()
    o.inject("-", "reject-2@remote.test")
    o.wait_log("status=bounced")
    o.wait_queue_empty()
    assert "dsn-" not in o.log()
    assert not o.inbox()


def test_success_notify_relayed_and_dsn_passed_on(out):
    o = out()
    o.rig.dns.mx("nodsn.test", (10, "mx.nodsn.test", ["127.0.0.2"]))
    o.rig.dns.mx("dsn.test", (10, "mx.dsn.test", ["127.0.0.3"]))
    o.rig.sink("127.0.0.2", dsn=False)
    o.rig.sink("127.0.0.3", dsn=True)
    o.start()
    o.inject(ALICE, "ok-5@nodsn.test", notify="SUCCESS")
    o.inject(ALICE, "ok-6@dsn.test|rfc822;ok-6@dsn.test", notify="SUCCESS,FAILURE",
             ret="HDRS", envid="E+1")
    m = o.wait_inbox(1)[0]
    o.rig.wait(lambda d: len(d) >= 2, what="both deliveries")
    o.wait_queue_empty()
    per, _, _ = report_parts(m)
    assert per["ok-5@nodsn.test"]["Action"] == "relayed"
    # The DSN-capable remote reports itself: no DSN from us.
    assert len(o.inbox()) == 1
    d = [x for x in o.rig.deliveries if x["ip"] == "127.0.0.3"][0]
    assert "RET=HDRS" in d["params"]["mail"] and "ENVID=E+2B1" in d["params"]["mail"]
    assert "NOTIFY=SUCCESS,FAILURE" in d["params"]["rcpt"][0]
    assert "ORCPT=rfc822;ok-6@dsn.test" in d["params"]["rcpt"][0]
    d2 = [x for x in o.rig.deliveries if x["ip"] == "127.0.0.2"][0]
    assert "NOTIFY" not in d2["params"]["rcpt"][0]


def test_delayed_dsn_once(out):
    o = out(delay_warning="1s")
    o.rig.dns.mx("down.test", (10, "mx.down.test", ["127.0.0.4"]))   # nothing listens
    o.start()
    o.inject(ALICE, "x@down.test")
    m = o.wait_inbox(1)[0]
    per, _, _ = report_parts(m)
    assert per["x@down.test"]["Action"] == "delayed"
    assert per["x@down.test"]["Status"].startswith("4.")
    assert per["x@down.test"]["Will-Retry-Until"]
    o.wait_log("rcpt=x@down.test", count=3)       # more attempts, no second DSN
    assert len(o.inbox()) == 1
    assert o.queue()[0][4] == "deferred"


def test_remote_sender_gets_queued_dsn(out):
    o = out()
    o.rig.dns.mx("remote.test", (10, "mx.remote.test", ["127.0.0.2"]))
    o.rig.dns.mx("home.test", (10, "mx.home.test", ["127.0.0.3"]))
    o.rig.sink("127.0.0.2")
    o.rig.sink("127.0.0.3")
    o.start()
    o.inject("bob@home.test", "reject-3@remote.test")
    o.rig.wait(lambda d: any(x["ip"] == "127.0.0.3" for x in d), what="the DSN at home.test")
    o.wait_queue_empty()
    d = [x for x in o.rig.deliveries if x["ip"] == "127.0.0.3"][0]
    assert d["from"].startswith("<>")                 # empty envelope sender
    assert d["rcpts"] == ["bob@home.test"]
    m = email.message_from_bytes(d["data"], policy=email.policy.compat32)
    per, _, _ = report_parts(m)
    assert per["reject-3@remote.test"]["Status"] == "5.1.1"


def test_bounce_of_forwarded_mail_goes_to_original_sender(out):
    """An alias forwards outside: smtpd queues it with an SRS sender; the
    remote refuses; the DSN goes to the address the SRS sender stands for
    (not to our SRS address), with an empty envelope sender."""
    o = out()
    o.rig.dns.mx("remote.test", (10, "mx.remote.test", ["127.0.0.2"]))
    o.rig.dns.mx("orig.test", (10, "mx.orig.test", ["127.0.0.3"]))
    o.rig.sink("127.0.0.2")
    o.rig.sink("127.0.0.3")
    o.inst.mailctl("alias", "add", "info@example.test", "reject-9@remote.test")
    o.inst.start("smtpd")
    o.start()
    with smtplib.SMTP("127.0.0.1", o.inst.port("smtp"), timeout=60) as s:
        s.sendmail("sender@orig.test", ["info@example.test"],
                   "From: <sender@orig.test>\r\nSubject: fwd\r\n\r\nhi\r\n")
    o.rig.wait(lambda d: any(x["ip"] == "127.0.0.3" for x in d),
               what="the DSN at orig.test")
    o.wait_queue_empty()
    d = [x for x in o.rig.deliveries if x["ip"] == "127.0.0.3"][0]
    assert d["from"].startswith("<>")
    assert d["rcpts"] == ["sender@orig.test"]
    m = email.message_from_bytes(d["data"], policy=email.policy.compat32)
    per, _, _ = report_parts(m)
    assert per["reject-9@remote.test"]["Status"] == "5.1.1"
    assert "dsn-failed" not in o.log()


def test_hanging_remote_times_out_then_retries(out):
    o = out(outbound_timeout="2s")
    o.rig.dns.mx("hang.test", (10, "mx.hang.test", ["127.0.0.2"]))
    o.rig.sink("127.0.0.2")
    o.start()
    o.inject(ALICE, "hang-1@hang.test")
    o.rig.wait(lambda d: len(d) >= 1, what="delivery after the timeout")
    o.wait_queue_empty()
    assert "timeout waiting for mx.hang.test" in o.log()


def test_smarthost_auth_private_ca(out, tmp_path):
    ca, crt, key = make_ca(str(tmp_path), ["relay.test"])
    auth = tmp_path / "relay-auth"
    auth.write_text("relayuser s3cret word\n")
    os.chmod(auth, 0o600)
    o = out()
    o.inst.write_config(relayhost=f"relay.test:{o.smtp_port}",
                        relayhost_auth_file=str(auth), relayhost_ca_file=ca)
    o.rig.dns.a("relay.test", "127.0.0.4")
    o.rig.sink("127.0.0.4", starttls=(crt, key), require_auth=("relayuser", "s3cret word"))
    o.start()
    o.inject(ALICE, "ok-7@anywhere.test,ok-8@elsewhere.test")
    o.rig.wait(lambda d: len(d) >= 1, what="delivery through the smarthost")
    o.wait_queue_empty()
    d = o.rig.deliveries[0]
    assert d["ip"] == "127.0.0.4" and d["tls"]
    assert sorted(d["rcpts"]) == ["ok-7@anywhere.test", "ok-8@elsewhere.test"]
    assert ("auth", "127.0.0.4", "ok") in o.rig.notes
    o.inst.stop("mtad")

    # A certificate the CA did not sign: never sent, deferred.
    o.rig.deliveries.clear()
    o.inst.write_config(relayhost_ca_file=o.inst.cert)
    o.start()
    o.inject(ALICE, "ok-9@anywhere.test")
    o.wait_log("status=deferred")
    assert "certificate" in o.log()
    assert not o.rig.deliveries
    o.inst.stop("mtad")

    # An auth file others can read: mtad refuses to start.
    os.chmod(auth, 0o644)
    r = subprocess.run([os.path.join(harness.BIN, "mtad"), "-c", o.inst.conf],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "readable by others" in r.stderr


# Transactions whose results may not be durable yet, per connection: a
# kill -9 can make each of them go again.
TXNS_IN_FLIGHT_PER_CONN = 2


def test_kill9_during_200_deliveries(out):
    per_dest = 3
    o = out(outbound_max_connections="4", outbound_max_per_destination=str(per_dest))
    o.rig.dns.mx("slow.test", (10, "mx.slow.test", ["127.0.0.2"]))
    o.rig.sink("127.0.0.2", delay=0.02)
    r = subprocess.run([HELPER, "bulk", o.inst.data_dir, ALICE, "ok-bulk@slow.test", "200"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    env = {"ASAN_OPTIONS": "detect_leaks=0"}
    o.inst.start("mtad", env=env)
    o.rig.wait(lambda d: len(d) >= 40, timeout=120, what="40 deliveries")
    o.inst.kill("mtad")
    o.inst.start("mtad")
    tags = lambda: [int(d["data"].split(b"tag ")[1].split()[0]) for d in o.rig.deliveries]
    o.rig.wait(lambda d: len(set(tags())) >= 200, timeout=300, what="all 200")
    o.wait_queue_empty(timeout=120)
    t = tags()
    dups = sorted({x for x in t if t.count(x) > 1})
    print(f"kill -9 test: {len(t)} deliveries of 200 messages, "
          f"{len(dups)} duplicated: {dups}")
    assert sorted(set(t)) == list(range(200))
    # Duplicates come only from the crash window (a reply not yet
    # recorded): at most the transactions in flight, on at most per_dest
    # connections to the one destination.
    assert len(dups) <= per_dest * TXNS_IN_FLIGHT_PER_CONN


def test_tls_failure_falls_back_to_plaintext(out):
    o = out()
    o.rig.dns.mx("badtls.test", (10, "mx.badtls.test", ["127.0.0.2"]))
    o.rig.sink("127.0.0.2", starttls="broken")
    o.start()
    o.inject(ALICE, "ok-10@badtls.test")
    o.rig.wait(lambda d: len(d) >= 1, what="plaintext delivery")
    o.wait_queue_empty()
    assert o.rig.deliveries[0]["tls"] is None
    assert "tls-failed remote=mx.badtls.test[127.0.0.2]" in o.log()
    assert "action=plaintext-retry" in o.log()


def test_small_and_large_messages_sent_intact(out):
    # mtad reads a small queue file into memory and maps a large one (over
    # 256 KiB): both go out byte for byte, dot lines stuffed.
    o = out()
    o.rig.dns.mx("sizes.test", (10, "mx.sizes.test", ["127.0.0.2"]))
    o.rig.sink("127.0.0.2")
    bodies = {}
    for name, nlines in (("small", 1000), ("large", 6000)):
        lines = "".join(f"{'.' if i % 7 == 0 else ''}{name} line {i:05d} " + "y" * 40 + "\r\n"
                        for i in range(nlines))
        bodies[f"ok-{name}@sizes.test"] = (
            f"From: <alice@example.test>\r\nSubject: {name}\r\n\r\n" + lines)
    assert len(bodies["ok-small@sizes.test"]) < 256 << 10 < len(bodies["ok-large@sizes.test"])
    for rcpt, body in bodies.items():
        o.inject(ALICE, rcpt, body=body)
    o.start()
    o.rig.wait(lambda d: len(d) >= 2, what="2 messages")
    o.wait_queue_empty()
    for d in o.rig.deliveries:
        assert d["data"].endswith(bodies[d["rcpts"][0]].encode()), d["rcpts"]


def test_size_utf8_and_8bit_limits(out):
    o = out()
    o.rig.dns.mx("small.test", (10, "mx.small.test", ["127.0.0.2"]))
    o.rig.dns.mx("old.test", (10, "mx.old.test", ["127.0.0.3"]))
    o.rig.sink("127.0.0.2", size=200)
    o.rig.sink("127.0.0.3", eightbit=False, smtputf8=False)
    o.start()
    big = "From: <alice@example.test>\r\nSubject: big\r\n\r\n" + "x" * 300 + "\r\n"
    o.inject(ALICE, "ok-11@small.test", body=big)
    # An 8-bit body goes out as quoted-printable to a server without 8BITMIME.
    eight = "From: <alice@example.test>\r\nSubject: 8bit\r\n\r\ncaf\u00e9 cr\u00e8me\r\n"
    o.inject(ALICE, "ok-12@old.test", body=eight)
    # An 8-bit header cannot be converted.
    bad = "From: <alice@example.test>\r\nSubject: caf\u00e9\r\n\r\ncaf\u00e9\r\n"
    o.inject(ALICE, "ok-14@old.test", body=bad)
    o.inject(ALICE, "j\u00f6rg@old.test")
    o.wait_inbox(3)
    o.rig.wait(lambda d: len(d) >= 1, what="the converted message")
    o.wait_queue_empty()
    per = {r: f for m in o.inbox() for r, f in report_parts(m)[0].items()}
    assert per["ok-11@small.test"]["Status"] == "5.3.4"
    assert per["ok-14@old.test"]["Status"] == "5.6.3"
    assert per["j\\x{F6}rg@old.test"]["Status"] == "5.6.7"     # RFC 6533 utf-8 type
    assert "ok-12@old.test" not in per
    d = o.rig.deliveries[0]
    assert d["rcpts"] == ["ok-12@old.test"] and "BODY=8BITMIME" not in d["params"]["mail"]
    assert all(b < 0x80 for b in d["data"])
    m = email.message_from_bytes(d["data"], policy=email.policy.default)
    assert m["Content-Transfer-Encoding"] == "quoted-printable"
    assert m.get_content().strip() == "caf\u00e9 cr\u00e8me"
    assert "converted remote=mx.old.test" in o.log()


@pytest.mark.parametrize("kind", ["longline", "manylines", "junk"])
def test_hostile_remote_replies(out, kind):
    o = out()
    o.rig.dns.mx("evil.test", (10, "mx1.evil.test", ["127.0.0.2"]),
                  (20, "mx2.evil.test", ["127.0.0.3"]))
    o.rig.sink("127.0.0.2", hostile=kind)
    o.rig.sink("127.0.0.3")
    o.start()
    o.inject(ALICE, "ok-13@evil.test")
    o.rig.wait(lambda d: len(d) >= 1, what="delivery via the sane MX")
    o.wait_queue_empty()
    assert o.rig.deliveries[0]["ip"] == "127.0.0.3"
    assert "host-failed remote=mx1.evil.test[127.0.0.2]" in o.log()


def test_delete_wins_over_attempt_in_flight(out):
    o = out(outbound_timeout="3s")
    o.rig.dns.mx("hang.test", (10, "mx.hang.test", ["127.0.0.2"]))
    o.rig.sink("127.0.0.2")
    o.start()
    qid = o.inject(ALICE, "hang-2@hang.test")
    deadline = time.monotonic() + 60
    while not any(n[0] == "hanging" for n in o.rig.notes):
        assert time.monotonic() < deadline, o.log()
        time.sleep(0.05)
    o.admin("delete", qid)
    o.wait_log("result-dropped")        # the timeout's DEFERRED is refused
    assert not o.queue()
    assert not o.rig.deliveries and not o.inbox()


def test_smarthost_ip_literal(out):
    o = out()
    # The harness certificate (self-signed, IP:127.0.0.1) is its own CA.
    o.inst.write_config(relayhost=f"127.0.0.1:{o.smtp_port}",
                        relayhost_ca_file=o.inst.cert)
    o.rig.sink("127.0.0.1", starttls=(o.inst.cert, o.inst.key))
    o.start()
    o.inject(ALICE, "ok-15@far.test")
    o.rig.wait(lambda d: len(d) >= 1, what="delivery to the literal smarthost")
    o.wait_queue_empty()
    assert o.rig.deliveries[0]["ip"] == "127.0.0.1" and o.rig.deliveries[0]["tls"]


def test_5xx_greeting_moves_on_then_bounces(out):
    o = out()
    # refused.test: both hosts refuse us for good, in two ways.
    o.rig.dns.mx("refused.test", (10, "mx1.refused.test", ["127.0.0.2"]),
                  (20, "mx2.refused.test", ["127.0.0.3"]))
    o.rig.sink("127.0.0.2", greeting="554 5.7.1 no SMTP service for you")
    o.rig.sink("127.0.0.3", refuse_helo="550 5.7.1 your name is not welcome")
    # next.test: the first host refuses, the second takes the mail.
    o.rig.dns.mx("next.test", (10, "mx1.next.test", ["127.0.0.2"]),
                  (20, "mx2.next.test", ["127.0.0.4"]))
    o.rig.sink("127.0.0.4")
    o.start()
    o.inject(ALICE, "someone@refused.test")
    o.inject(ALICE, "ok-20@next.test")
    o.rig.wait(lambda d: len(d) >= 1, what="delivery via the second MX")
    assert o.rig.deliveries[0]["ip"] == "127.0.0.4"
    m = o.wait_inbox(1)[0]
    o.wait_queue_empty()
    per, _, _ = report_parts(m)
    f = per["someone@refused.test"]
    assert f["Action"] == "failed" and f["Status"] == "5.7.1"
    assert f["Diagnostic-Code"] == "smtp; 550 5.7.1 your name is not welcome"
    assert f["Remote-MTA"].startswith("dns; mx2.refused.test[127.0.0.3]")
    notes = [n[0] for n in o.rig.notes]
    assert "greeting" in notes and "helo-refused" in notes
    assert "status=bounced dsn=5.7.1" in o.log()
    assert len(o.inbox()) == 1 and len(o.rig.deliveries) == 1


def test_4xx_greeting_defers(out):
    o = out()
    o.rig.dns.mx("busy.test", (10, "mx.busy.test", ["127.0.0.2"]))
    o.rig.sink("127.0.0.2", greeting="421 4.3.2 too busy, come back later")
    o.start()
    o.inject(ALICE, "someone@busy.test")
    # Deferred, then retried (and deferred again): never bounced.
    o.wait_log("status=deferred dsn=4.3.2", count=2)
    assert "status=bounced" not in o.log()
    assert o.queue() and not o.inbox()


def test_connection_reuse(out):
    o = out(outbound_max_per_destination="4")
    o.rig.dns.mx("reuse.test", (10, "mx.reuse.test", ["127.0.0.2"]))
    sink = o.rig.sink("127.0.0.2")
    for i in range(12):
        o.inject(ALICE, f"ok-{i}@reuse.test")
    o.start()
    o.rig.wait(lambda d: len(d) >= 12, what="12 messages")
    o.wait_queue_empty()
    got = sorted(r for d in o.rig.deliveries for r in d["rcpts"])
    assert got == sorted(f"ok-{i}@reuse.test" for i in range(12))
    # At most outbound_max_per_destination (4) connections carried the 12.
    assert sink.connections <= 4, sink.connections
    assert o.log().count("status=sent") == 12


def test_per_destination_bound(out):
    o = out(outbound_max_per_destination="2")
    o.rig.dns.mx("bound.test", (10, "mx.bound.test", ["127.0.0.2"]))
    sink = o.rig.sink("127.0.0.2", delay=0.05)
    for i in range(20):
        o.inject(ALICE, f"ok-{i}@bound.test")
    o.start()
    o.rig.wait(lambda d: len(d) >= 20, what="20 messages")
    o.wait_queue_empty()
    got = sorted(r for d in o.rig.deliveries for r in d["rcpts"])
    assert got == sorted(f"ok-{i}@bound.test" for i in range(20))
    # Never more than the configured connections at once (the default, 10,
    # would allow 10).
    assert sink.max_active <= 2, sink.max_active


def test_remote_closing_between_transactions(out):
    # Fewer connections than messages, so some go over a reused one.
    o = out(outbound_max_per_destination="4")
    o.rig.dns.mx("close.test", (10, "mx.close.test", ["127.0.0.2"]))
    sink = o.rig.sink("127.0.0.2", close_after=1)
    for i in range(8):
        o.inject(ALICE, f"ok-{i}@close.test")
    o.start()
    o.rig.wait(lambda d: len(d) >= 8, what="8 messages")
    o.wait_queue_empty()
    got = sorted(r for d in o.rig.deliveries for r in d["rcpts"])
    assert got == sorted(f"ok-{i}@close.test" for i in range(8))   # each once
    log = o.log()
    assert "reconnect remote=mx.close.test[127.0.0.2]" in log
    assert "status=deferred" not in log and "status=bounced" not in log
    assert sink.connections == 8 and not o.inbox()


def test_ipv6_aaaa_only_mx(out):
    o = out()
    o.rig.dns.mx("v6.test", (10, "mx.v6.test", ["::1"]))
    o.rig.sink("::1")
    o.start()
    o.inject(ALICE, "ok-30@v6.test")
    o.rig.wait(lambda d: len(d) >= 1, what="delivery over ::1")
    o.wait_queue_empty()
    assert o.rig.deliveries[0]["ip"] == "::1"
    assert "rcpt=ok-30@v6.test relay=mx.v6.test[::1]:" in o.log()


def test_unreachable_ipv6_falls_back_to_ipv4(out):
    o = out()
    # Nothing listens on ::1 here: the IPv6 address (tried first) is
    # refused, the IPv4 one of the same host takes the mail.
    o.rig.dns.mx("dual.test", (10, "mx.dual.test", ["127.0.0.2", "::1"]))
    o.rig.sink("127.0.0.2")
    o.start()
    o.inject(ALICE, "ok-31@dual.test")
    o.rig.wait(lambda d: len(d) >= 1, what="delivery over IPv4")
    o.wait_queue_empty()
    log = o.log()
    assert "host-failed remote=mx.dual.test[::1]" in log
    assert "rcpt=ok-31@dual.test relay=mx.dual.test[127.0.0.2]:" in log
    assert "status=deferred" not in log


def test_outbound_ip_family_ipv4(out):
    o = out(outbound_ip_family="ipv4")
    o.rig.dns.mx("fam.test", (10, "mx.fam.test", ["127.0.0.2", "::1"]))
    v4 = o.rig.sink("127.0.0.2")
    v6 = o.rig.sink("::1")
    o.start()
    o.inject(ALICE, "ok-32@fam.test")
    o.rig.wait(lambda d: len(d) >= 1, what="delivery over IPv4")
    o.wait_queue_empty()
    assert o.rig.deliveries[0]["ip"] == "127.0.0.2"
    assert v4.connections == 1 and v6.connections == 0


def test_kill9_smtpd_right_after_250(out):
    o = out()
    o.rig.dns.mx("far.test", (10, "mx.far.test", ["127.0.0.2"]))
    o.rig.sink("127.0.0.2")
    o.inst.start("smtpd")
    tok = f"kill9-smtpd-{time.time()}"
    msg = (f"From: <{ALICE}>\r\nTo: <friend@far.test>\r\nSubject: {tok}\r\n"
           f"\r\nBody {tok}\r\n")
    c = smtplib.SMTP("127.0.0.1", o.inst.port("submission"), timeout=60)
    c.starttls(context=harness.client_tls_context())
    c.login(ALICE, harness.PASSWORD)
    assert c.sendmail(ALICE, ["friend@far.test"], msg) == {}   # the 250
    o.inst.kill("smtpd")                                        # at once
    try:
        c.close()
    except OSError:
        pass
    rows = o.queue()
    assert len(rows) == 1 and "friend@far.test" in rows[0], rows
    # smtpd comes back; mtad (not running until now) delivers it once.
    o.inst.start("smtpd")
    o.start()
    o.rig.wait(lambda d: len(d) >= 1, what="the acknowledged message")
    o.wait_queue_empty()
    assert len(o.rig.deliveries) == 1
    d = o.rig.deliveries[0]
    assert d["rcpts"] == ["friend@far.test"] and tok.encode() in d["data"]
    assert o.log().count("status=sent") == 1


def test_slow_start_after_failures(out):
    o = out()
    o.rig.dns.mx("slow.test", (10, "mx.slow.test", ["127.0.0.3"]))
    for i in range(8):
        o.inject(ALICE, f"ok-{i}@slow.test")
    o.start()                           # nothing listens yet: all fail
    o.wait_log("status=deferred", count=8)
    assert "slow-start domain=slow.test connections=1" in o.log()
    # The host comes back, slow to answer the data: had mtad opened
    # several connections, they would all be there before the first 250.
    o.rig.sink("127.0.0.3", delay=0.5)
    o.rig.wait(lambda d: len(d) >= 8, what="8 messages")
    o.wait_queue_empty()
    assert o.rig.deliveries[0]["params"]["connections"] == 1
    assert "slow-start-end domain=slow.test" in o.log()
    got = sorted(r for d in o.rig.deliveries for r in d["rcpts"])
    assert got == sorted(f"ok-{i}@slow.test" for i in range(8))
