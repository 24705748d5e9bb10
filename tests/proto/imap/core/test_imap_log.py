"""imapd log lines: "imapd <level> <session-id|-> <event> key=value ...",
the daemon's name once (log.c puts it first), one connect line (the
network layer's) and one disconnect line per session."""
import os
import re
import signal
import subprocess

from lib import BIN
from lib.imap import Raw, plain_instance

LINE_RE = re.compile(r'^imapd (debug|info|warn|error) (-|[0-9a-f]{8,}) [a-z][a-z-]*'
                     r'( [a-z][a-z_-]*=("[^"]*"|\S*))*$')


def test_log_lines_are_event_key_value(pr):
    plain_instance(pr)
    pr.start("imapd")
    r = Raw(pr)
    r.starttls()
    r.login()
    r.ok('ID ("name" "logtest")')
    r.ok("SELECT INBOX")
    r.cmd("LOGOUT")
    r.close()
    r = Raw(pr)
    r.cmd('LOGIN "alice@example.test" "wrong"')
    r.close()
    # stop and wait here, so the log is complete; the fixture's stop then
    # only checks the exit status and the sanitizer report
    p = pr.procs["imapd"]
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=60)
    lines = [x for x in pr.log("imapd").splitlines() if x.startswith("imapd ")]
    assert lines, pr.log("imapd")
    bad = [x for x in lines if not LINE_RE.match(x) or " imapd " in x[6:]]
    assert bad == [], bad
    by_id = {}
    for x in lines:
        if x.split()[2] != "-":
            by_id.setdefault(x.split()[2], []).append(x.split()[3])
    # (the harness's own port probes are connections too)
    for sid, ev in by_id.items():
        assert ev.count("connect") == 1 and ev.count("disconnect") == 1, (sid, lines)
        assert ev.count("session-end") <= 1, (sid, lines)
    assert sum(ev.count("session-end") for ev in by_id.values()) >= 2, lines
    assert any(re.search(r" starttls result=ok version=TLSv1\.[23]$", x) for x in lines)
    assert any(" login user=alice@example.test result=ok" in x for x in lines)
    assert sum(1 for x in lines if x.endswith(" - stopped")) == 1, lines
    assert any(re.match(r"imapd info - start imap=", x) for x in lines), lines


def test_command_line_errors():
    """The shared daemon start (config_from_args): usage and exit 2 for an
    unknown option, one line and exit 1 for a config that cannot be read."""
    imapd = os.path.join(BIN, "imapd")
    r = subprocess.run([imapd, "-x"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "usage: imapd [-c FILE]" in r.stderr, r
    r = subprocess.run([imapd, "-c", "/nonexistent/postroom.conf"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 1 and r.stderr.startswith("imapd: /nonexistent"), r
