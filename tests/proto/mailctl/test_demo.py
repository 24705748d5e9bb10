"""scripts/demo.sh (what `make run` runs): first start creates the instance
and prints the password once, the daemons answer on the documented ports,
Ctrl-C stops everything cleanly, and a second start reuses the instance
without printing a password. Runs in a copy of the script under a temporary
root so the real var/demo is never touched; skipped if the demo's fixed
ports are taken (e.g. a `make run` is going on)."""
import os
import poplib
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time
import imaplib

import pytest

from lib import BIN, ROOT, SANITIZER_MARKS, client_tls_context, default_signals, free_port

PORTS = {"smtpd": [2525, 5587, 5465], "pop3d": [1110, 1995],
         "imapd": [1143, 1993], "mtad": []}


def port_free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class Demo:
    def __init__(self, root):
        self.root = root
        self.out = open(os.path.join(root, "demo.out"), "w+")
        self.p = subprocess.Popen(
            ["bash", os.path.join(root, "scripts", "demo.sh"), BIN],
            stdout=self.out, stderr=subprocess.STDOUT, start_new_session=True,
            # SIGINT back to its default: when the tests run as a background
            # job (`make test &`), it is ignored on entry, and bash cannot
            # trap a signal that was ignored when it started.
            preexec_fn=default_signals,
            # The demo's MX checks look names up: a closed loopback port
            # instead of the machine's resolver (no traffic off loopback).
            env=dict(os.environ, POSTROOM_DEMO_DNS=f"127.0.0.1:{free_port()}"))

    def text(self):
        self.out.flush()
        with open(self.out.name, errors="replace") as f:
            return f.read()

    def wait_ready(self, timeout=300):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "Press Ctrl-C to stop." in self.text():
                return
            if self.p.poll() is not None:
                raise AssertionError(f"demo.sh exited {self.p.returncode}:\n"
                                     + self.text())
            time.sleep(0.1)
        raise AssertionError("demo.sh not ready:\n" + self.text())

    def ctrl_c(self, timeout=120):
        # A terminal's Ctrl-C goes to the whole foreground process group.
        os.killpg(self.p.pid, signal.SIGINT)
        try:
            rc = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.p.pid, signal.SIGKILL)
            self.p.wait()
            raise AssertionError("demo.sh did not stop:\n" + self.text())
        self.out.close()
        return rc

    def kill(self):
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGKILL)
            self.p.wait()
        # demo.sh starts each daemon in a session of its own (setsid): when
        # the script had to be killed, its daemons still hold the demo ports.
        conf = os.path.join(self.root, "var", "demo", "postroom.conf").encode()
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if conf in f.read().split(b"\0"):
                        os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass


@pytest.fixture
def demo_root():
    daemons = [d for d in PORTS if os.access(os.path.join(BIN, d), os.X_OK)]
    busy = [p for d in daemons for p in PORTS[d] if not port_free(p)]
    if busy:
        pytest.skip(f"demo ports in use: {busy}")
    root = tempfile.mkdtemp(prefix="postroom-demo-")
    os.makedirs(os.path.join(root, "scripts"))
    shutil.copy(os.path.join(ROOT, "scripts", "demo.sh"),
                os.path.join(root, "scripts", "demo.sh"))
    yield root, daemons
    shutil.rmtree(root, ignore_errors=True)


def test_demo(demo_root):
    root, daemons = demo_root
    d = Demo(root)
    try:
        d.wait_ready()
        text = d.text()
        m = re.search(r"Created demo@example\.test with the password:\s+(\S+)",
                      text)
        assert m, text
        password = m.group(1)
        assert len(password) >= 12
        for name in daemons:
            assert name in text.split("Postroom demo is running")[1]
        ctx = client_tls_context()
        if "smtpd" in daemons:
            with smtplib.SMTP("127.0.0.1", 2525, timeout=60) as s:
                s.sendmail("someone@example.org", ["demo@example.test"],
                           "Subject: demo test\r\n\r\nhello\r\n")
            with smtplib.SMTP("127.0.0.1", 5587, timeout=60) as s:
                s.starttls(context=ctx)
                s.login("demo@example.test", password)
        if "imapd" in daemons:
            i = imaplib.IMAP4("127.0.0.1", 1143, timeout=60)
            i.starttls(ssl_context=ctx)
            i.login("demo@example.test", password)
            names = b" ".join(i.list()[1])
            for mb in [b"INBOX", b"Drafts", b"Sent", b"Trash", b"Junk",
                       b"Archive"]:
                assert mb in names
            i.logout()
        if "pop3d" in daemons:
            p = poplib.POP3_SSL("127.0.0.1", 1995, context=ctx, timeout=60)
            p.user("demo@example.test")
            p.pass_(password)
            # The welcome message, plus the one sent above.
            want = 2 if "smtpd" in daemons else 1
            # delivery is durable at the 250, but allow a loaded machine
            # a generous bound before the count must be right
            deadline = time.monotonic() + 120
            while p.stat()[0] < want and time.monotonic() < deadline:
                p.quit()
                time.sleep(0.2)
                p = poplib.POP3_SSL("127.0.0.1", 1995, context=ctx,
                                    timeout=60)
                p.user("demo@example.test")
                p.pass_(password)
            assert p.stat()[0] == want
            p.quit()
    finally:
        if d.p.poll() is None:
            rc = d.ctrl_c()
        else:
            rc = d.p.returncode
        d.kill()
    text = d.text() if not d.out.closed else open(d.out.name).read()
    assert rc == 0, text
    assert "demo: stopped" in text
    assert not [mk for mk in SANITIZER_MARKS if mk in text], text
    for port in [p for n in daemons for p in PORTS[n]]:
        assert port_free(port), f"port {port} still bound after Ctrl-C"

    # Second start: same instance, password not shown again.
    d = Demo(root)
    try:
        d.wait_ready()
        text = d.text()
        assert "with the password" not in text
        assert password not in text
        assert "demo@example.test exists" in text
    finally:
        rc = d.ctrl_c() if d.p.poll() is None else d.p.returncode
        d.kill()
    assert rc == 0
