"""A real rspamd (Debian's package) in milter mode, started privately: its
proxy worker scans by itself (self_scan, no normal worker, no redis), bound
to a free loopback port, with a temporary config dir (LOCAL_CONFDIR, DBDIR,
RUNDIR, LOGDIR) and a DNS server that does not exist on loopback, so nothing
leaves the machine. The GTUBE test message is rspamd's "reject" action;
with quarantine_on_reject rspamd asks the MTA to quarantine it, and Postroom
files it into Junk. The GTUBE variant for the "add header" action gets
X-Spam: Yes, which files it into Junk too."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from .test_milter import ALICE, harness, mailbox, start

RSPAMD = shutil.which("rspamd") or "/usr/bin/rspamd"
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
# rspamd's test pattern for its "add header" action (enable_test_patterns = true).
GTUBE_ADD_HEADER = "YJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


class Rspamd:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="postroom-rspamd-")
        local = os.path.join(self.dir, "local")
        for d in ("local/local.d", "local/override.d", "db", "run", "log"):
            os.makedirs(os.path.join(self.dir, d))
        self.port = harness.free_port()
        dead = harness.free_port()
        files = {
            "override.d/worker-proxy.inc": (
                f'bind_socket = "127.0.0.1:{self.port}";\nmilter = yes;\n'
                "timeout = 120s;\nself_scan = yes;\ncount = 1;\n"
                "quarantine_on_reject = true;\nspam_header = \"X-Spam\";\n"
                "upstream \"local\" { default = yes; self_scan = yes; }\n"),
            "override.d/worker-normal.inc": 'count = -1; bind_socket = "127.0.0.1:1";\n',
            "override.d/worker-controller.inc": 'count = -1; bind_socket = "127.0.0.1:1";\n',
            "override.d/logging.inc": 'type = "console"; level = "info";\n',
            "local.d/options.inc": (
                'enable_test_patterns = true;\n'
                f'dns {{ nameserver = ["127.0.0.1:{dead}"]; timeout = 1s; retransmits = 1; }}\n'),
        }
        for name, text in files.items():
            with open(os.path.join(local, name), "w") as f:
                f.write(text)
        self.log = open(os.path.join(self.dir, "rspamd.out"), "w+")
        self.p = subprocess.Popen(
            [RSPAMD, "-f", "-i", "-c", "/etc/rspamd/rspamd.conf",
             f"--var=LOCAL_CONFDIR={local}", f"--var=DBDIR={self.dir}/db",
             f"--var=RUNDIR={self.dir}/run", f"--var=LOGDIR={self.dir}/log"],
            cwd=self.dir, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)
        # rspamd compiles its rules first: wait for the listener (bounded
        # only so that a broken rspamd cannot hang the suite).
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.p.poll() is not None:
                raise RuntimeError(f"rspamd exited {self.p.returncode}: {self.text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=5).close()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("rspamd did not listen: " + self.text()[-2000:])

    def text(self):
        self.log.flush()
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def stop(self):
        try:
            os.killpg(self.p.pid, signal.SIGTERM)
            self.p.wait(timeout=60)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.p.pid, signal.SIGKILL)
            self.p.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def rspamd():
    if not os.access(RSPAMD, os.X_OK) or not os.path.exists("/etc/rspamd/rspamd.conf"):
        pytest.skip("rspamd (Debian package) is not installed")
    try:
        r = Rspamd()
    except RuntimeError as e:
        pytest.skip(f"rspamd cannot be started here: {e}")
    yield r
    r.stop()


@pytest.fixture(scope="module")
def inst(rspamd):
    i = start({"milter": f"inet:127.0.0.1:{rspamd.port}", "milter_timeout": "120s"})
    yield i
    i.stop_all()


def _send_body(inst, pattern, subject):
    import smtplib
    msg = (f"From: <carol@sender.test>\r\nTo: <{ALICE}>\r\nSubject: {subject}\r\n"
           f"Message-ID: <{subject.replace(' ', '-')}@sender.test>\r\n"
           "Date: Mon, 7 Dec 2026 20:00:00 +0000\r\n\r\n"
           f"This is the GTUBE test.\r\n\r\n{pattern}\r\n")
    s = smtplib.SMTP("127.0.0.1", inst.port("smtp"), timeout=300)
    try:
        s.ehlo("client.sender.test")
        s.mail("carol@sender.test")
        s.rcpt(ALICE)
        code, text = s.data(msg.encode())
        s.quit()
    finally:
        s.close()
    return code, text


def test_gtube_goes_to_junk(inst, rspamd):
    code, text = _send_body(inst, GTUBE, "gtube reject")
    assert code == 250, text
    assert [m for m in mailbox(inst, ALICE, "Junk") if b"gtube reject" in m]
    assert not [m for m in mailbox(inst, ALICE, "INBOX") if b"gtube reject" in m]
    assert "quarantine" in inst.log("smtpd")


def test_gtube_add_header_goes_to_junk(inst, rspamd):
    code, text = _send_body(inst, GTUBE_ADD_HEADER, "gtube add header")
    assert code == 250, text
    junk = [m for m in mailbox(inst, ALICE, "Junk") if b"gtube add header" in m]
    assert junk and b"X-Spam: Yes" in junk[0]
