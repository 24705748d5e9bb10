"""imapd log lines: "imapd <level> <session-id|-> <event> key=value ...",
the daemon's name once (log.c puts it first), one connect line (the
network layer's) and one disconnect line per session."""
import re
import signal

from imap_core_helper import Raw, plain_instance

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
