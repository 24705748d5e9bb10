"""A DSN and the mark that it went are one commit: mtad killed (SIGKILL,
by the test builds' POSTROOM_TEST_CRASH hook) just after a DSN was
committed sends no second one after its restart, whether the DSN went to
a local inbox or into the queue for a remote sender."""
import email
import email.policy

from .test_outbound import ALICE, Out, out, report_parts  # noqa: F401

from lib import WRAP_SCALE

CRASH = {"POSTROOM_TEST_CRASH": "dsn-committed", "ASAN_OPTIONS": "detect_leaks=0"}


def crash_then_restart(o):
    """Starts mtad with the hook, waits for it to die at the point, then
    starts it again without."""
    o.inst.start("mtad", env=CRASH)
    p = o.inst.procs["mtad"]
    p.wait(timeout=120 * WRAP_SCALE)
    o.inst.kill("mtad")          # reaps the dead one, keeps the instance
    o.start()


def test_local_dsn_once_across_kill9(out):
    o = out()
    o.rig.dns.mx("remote.test", (10, "mx.remote.test", ["127.0.0.2"]))
    o.rig.sink("127.0.0.2")
    o.inject(ALICE, "reject-1@remote.test")
    crash_then_restart(o)
    o.wait_queue_empty()
    msgs = o.inbox()
    assert len(msgs) == 1, o.log()
    per, _, _ = report_parts(msgs[0])
    assert per["reject-1@remote.test"]["Action"] == "failed"


def test_queued_dsn_once_across_kill9(out):
    o = out()
    o.rig.dns.mx("remote.test", (10, "mx.remote.test", ["127.0.0.2"]))
    o.rig.dns.mx("home.test", (10, "mx.home.test", ["127.0.0.3"]))
    o.rig.sink("127.0.0.2")
    o.rig.sink("127.0.0.3")
    o.inject("bob@home.test", "reject-3@remote.test")
    crash_then_restart(o)
    o.rig.wait(lambda d: any(x["ip"] == "127.0.0.3" for x in d), what="the DSN at home.test")
    o.wait_queue_empty()
    home = [x for x in o.rig.deliveries if x["ip"] == "127.0.0.3"]
    assert len(home) == 1, o.log()
    m = email.message_from_bytes(home[0]["data"], policy=email.policy.compat32)
    per, _, _ = report_parts(m)
    assert per["reject-3@remote.test"]["Status"] == "5.1.1"
