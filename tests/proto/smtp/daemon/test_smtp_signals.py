"""smtpd and signals: SIGHUP reloads the certificate without dropping the
service; SIGTERM says 421 to open sessions (also one in the middle of
DATA, whose message is not stored) and exits 0 with a clean sanitizer
log (checked by the harness's stop())."""
import os
import shutil
import signal
import ssl
import subprocess
import time

from lib import WRAP_SCALE
from lib.smtp import BOB, Raw, find, token_message, setup_users, token


def new_cert(d, cn):
    cert, key = os.path.join(d, f"{cn}.pem"), os.path.join(d, f"{cn}.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "2", "-subj",
                    f"/CN={cn}"], check=True, capture_output=True)
    return cert, key


def peer_cert(inst):
    r = Raw.connect(inst, "smtps", tls=True)
    der = r.s.getpeercert(binary_form=True)
    r.greeting()
    r.expect("QUIT", 221)
    return der


def test_sighup_reloads_certificate(pr):
    cert, key = os.path.join(pr.dir, "live.pem"), os.path.join(pr.dir, "live.key")
    shutil.copy(pr.cert, cert)
    shutil.copy(pr.key, key)
    pr.write_config(tls_cert=cert, tls_key=key)
    setup_users(pr)
    pr.start("smtpd")
    before = peer_cert(pr)
    c2, k2 = new_cert(pr.dir, "renewed.example.test")
    shutil.copy(c2, cert)
    shutil.copy(k2, key)
    held = Raw.connect(pr, "smtp")      # a session across the reload
    held.greeting()
    pr.signal("smtpd", signal.SIGHUP)
    deadline = time.time() + 60 * WRAP_SCALE
    while peer_cert(pr) == before:
        assert time.time() < deadline, "certificate not reloaded"
        time.sleep(0.1)
    held.ehlo()
    held.expect("QUIT", 221)


def test_sigterm_with_open_sessions(pr):
    setup_users(pr)
    pr.start("smtpd")
    tok = token()
    idle = Raw.connect(pr, "smtp")
    idle.greeting()
    idle.ehlo()
    mid = Raw.connect(pr, "smtp")
    mid.greeting()
    mid.ehlo()
    mid.expect("MAIL FROM:<x@remote.test>", 250)
    mid.expect(f"RCPT TO:<{BOB}>", 250)
    mid.expect("DATA", 354)
    mid.send(token_message(tok)[:40])
    time.sleep(0.2)
    pr.stop("smtpd")                    # asserts exit 0, clean log
    c, text = idle.reply()
    assert (c, text[0][:5]) == (421, "4.3.2")
    assert find(pr, BOB, tok) == []
