"""The TLS handshake has its own short deadline (tls_handshake_timeout),
whatever preauth_timeout says: a peer that opens a TLS connection, or asks
for STARTTLS, and then stalls the handshake is closed, on every daemon.
The tests wait for the close itself; the deadline of the test is far above
the configured one and far below preauth_timeout."""
import socket

import pytest

from lib import WRAP_SCALE, wait_for
from lib.instance import Instance

from test_tls_ciphers import starttls

DAEMONS = {"smtp": "smtpd", "imap": "imapd", "pop3": "pop3d"}


@pytest.fixture(scope="module")
def hs():
    inst = Instance({"preauth_timeout": "10m", "tls_handshake_timeout": "2s"})
    try:
        inst.start("smtpd", "pop3d", "imapd")
        yield inst
    finally:
        inst.stop_all()


def _closed_within(sock, seconds):
    sock.settimeout(seconds * WRAP_SCALE)
    try:
        while sock.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


@pytest.mark.parametrize("proto", ["smtp", "imap", "pop3"])
def test_stalled_implicit_tls_is_closed(hs, proto):
    s = socket.create_connection(("127.0.0.1", hs.port(proto + "s")),
                                 timeout=30)
    try:
        # preauth_timeout is 10 minutes: a close is the handshake deadline's
        # doing (the log line below says so). How soon it comes is the unit
        # test's to check (test_conn.c, a loop-driven clock): a wall-clock
        # bound here would fail on a loaded machine.
        assert _closed_within(s, 240), "stalled TLS handshake still open"
    finally:
        s.close()
    assert wait_for(lambda: "reason=tls-handshake-timeout" in
                    hs.log(DAEMONS[proto]), 60)


@pytest.mark.parametrize("proto", ["smtp", "imap", "pop3"])
def test_stalled_starttls_is_closed(hs, proto):
    s = socket.create_connection(("127.0.0.1", hs.port(proto)), timeout=30)
    try:
        starttls(s, proto)
        assert _closed_within(s, 240), \
            "stalled STARTTLS handshake still open"
    finally:
        s.close()
