"""SIGHUP: every daemon (smtpd, pop3d, imapd, mtad) reloads through the same
path and logs the same single line, `- reload cert=<path> result=ok`."""
import re
import signal

from lib import wait_for
from lib.instance import Instance

DAEMONS = ["smtpd", "pop3d", "imapd", "mtad"]


def test_sighup_logs_one_reload_line_everywhere():
    inst = Instance()
    try:
        inst.start(*DAEMONS)
        want = re.compile(r" - reload cert=" + re.escape(inst.cert) +
                          r" result=ok$", re.M)
        for name in DAEMONS:
            # mtad has no port to wait for: its start line says it runs.
            assert wait_for(lambda: " - start" in inst.log(name), 60), name
            # A HUP that lands before the loop watches for it is ignored
            # (not fatal): send again until one is seen.
            for _ in range(20):
                inst.signal(name, signal.SIGHUP)
                if wait_for(lambda: want.search(inst.log(name)), 3):
                    break
            assert want.search(inst.log(name)), \
                f"{name}: no reload line:\n{inst.log(name)[-2000:]}"
        for name in DAEMONS:
            lines = [ln for ln in inst.log(name).splitlines()
                     if re.search(r"\breload\b", ln)]
            assert lines and all(want.search(ln) for ln in lines), \
                (name, lines)
    finally:
        inst.stop_all()
