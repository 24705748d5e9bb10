"""Store crash test: a helper process delivers from 16 threads and prints
"committed <uid> <tag>" only after store_delivery_commit returned; we kill
it with SIGKILL at a random moment, then check that the index opens and
every reported delivery is there exactly once, with its UID. Repeated a few
times over the same data dir, then once more after a reindex."""
import os
import random
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
BIN = os.environ.get("POSTROOM_BIN") or os.path.join(ROOT, "build", "san", "bin")
HELPER = os.path.join(os.path.dirname(BIN), "tests", "test_store_crash_helper")
ADDR = "crash@example.test"


def run(*args):
    p = subprocess.run([HELPER, *args], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, (args, p.stdout[-2000:], p.stderr[-4000:])
    return p.stdout


def check(data):
    out = run("check", data, ADDR)
    msgs = {}
    tags = {}
    for line in out.splitlines():
        f = line.split()
        if f[0] == "msg":
            uid, tag = int(f[1]), f[2]
            assert uid not in msgs
            msgs[uid] = tag
            tags.setdefault(tag, []).append(uid)
        elif f[0] == "missing":
            pytest.fail("message file missing: " + line)
    assert out.splitlines()[-1].startswith("ok ")
    return msgs, tags


def deliver_and_kill(data, committed):
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=0")
    p = subprocess.Popen([HELPER, "deliver", data, ADDR, "16"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env)
    want = random.randint(150, 400)
    seen = 0
    deadline = time.monotonic() + 120
    # A helper that hangs without output must not hang the test run.
    watchdog = threading.Timer(180, p.kill)
    watchdog.start()
    try:
        for line in p.stdout:
            f = line.split()
            assert f[0] == "committed", line
            committed.append((int(f[1]), f[2]))
            seen += 1
            if seen >= want or time.monotonic() > deadline:
                break
        # Let it run a little further so the kill lands mid-commit.
        time.sleep(random.random() * 0.05)
    finally:
        p.send_signal(signal.SIGKILL)
        rest, err = p.communicate(timeout=60)
        watchdog.cancel()
    for line in rest.splitlines():
        f = line.split()
        if len(f) == 3 and f[0] == "committed":
            committed.append((int(f[1]), f[2]))
    assert seen > 0, err[-4000:]


def verify(data, committed):
    msgs, tags = check(data)
    for uid, tag in committed:
        assert tags.get(tag) == [uid], (tag, uid, tags.get(tag))
    return msgs


def test_store_crash():
    assert os.path.exists(HELPER), "build the unit tests first: " + HELPER
    d = tempfile.mkdtemp(prefix="postroom-crash-")
    data = os.path.join(d, "data")
    try:
        run("setup", data, ADDR)
        committed = []
        for _ in range(3):
            deliver_and_kill(data, committed)
            verify(data, committed)
        # A rebuild from the files keeps every reported delivery and its
        # UID; files linked by a batch that never committed come back as
        # recovered messages with fresh UIDs, never in place of another.
        before = verify(data, committed)
        out = run("reindex", data, ADDR)
        assert out.startswith("reindex ")
        after = verify(data, committed)
        for uid, tag in before.items():
            assert after.get(uid) == tag
    finally:
        shutil.rmtree(d, ignore_errors=True)
