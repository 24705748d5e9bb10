"""Results that cannot be committed (an LMDB error such as MDB_MAP_FULL,
forced here by the test builds' POSTROOM_TEST_FAIL hook) put their
recipients back to be retried instead of leaving them in flight until a
restart: the message is delivered again and the queue empties, with
mtad running all along."""
from .test_outbound import ALICE, out  # noqa: F401



def run(o, fail):
    o.rig.dns.mx("remote.test", (10, "mx.remote.test", ["127.0.0.2"]))
    o.rig.sink("127.0.0.2")
    o.inject(ALICE, "ok-1@remote.test")
    o.inst.start("mtad", env={"POSTROOM_TEST_FAIL": fail})
    o.wait_log("result-commit-failed rcpt=ok-1@remote.test")
    o.rig.wait(lambda d: len(d) >= 2, what="the retry after the failed commit")
    o.wait_queue_empty()
    assert [d["rcpts"] for d in o.rig.deliveries] == [["ok-1@remote.test"]] * 2
    assert not o.inbox()                     # no DSN: it was sent


def test_failed_commit_requeues(out):
    o = out()
    run(o, "results-commit")
    assert "retry=requeued" in o.log()


def test_failed_commit_and_requeue_retried_later(out):
    o = out()
    run(o, "results-commit,results-retry")
    log = o.log()
    assert "retry=later" in log
    assert "result-requeued rcpts=1" in log
