"""Fixtures for the client-replay suite.

`imap_server` (one per module) starts imapd, plus smtpd when it is built, under the
shared harness (lib.Instance); `target` adds a fresh user and returns a replay.Target for it.
Without an imapd or mailctl binary the whole module is skipped.

IMAP_REPLAY_TARGET=host,imap_port,imaps_port[,cert.pem] runs the same tests against another
server (users u1..u60@example.test with the harness password must exist there);
used to check the transcripts against Dovecot.
"""
import itertools
import os

import pytest

from lib import BIN, PASSWORD, Instance
from .replay import Target

_users = itertools.count(1)
EXTERNAL = os.environ.get("IMAP_REPLAY_TARGET")


def have(name):
    return os.access(os.path.join(BIN, name), os.X_OK)


class External:
    def __init__(self, spec):
        host, p1, p2, *cert = spec.split(",")
        self.host, self.imap, self.imaps = host, int(p1), int(p2)
        self.cert = cert[0] if cert else None
        self.procs = {}


@pytest.fixture(scope="module")
def imap_server():
    if EXTERNAL:
        yield External(EXTERNAL)
        return
    for name in ("imapd", "mailctl"):
        if not have(name):
            pytest.skip(f"{name} is not built in {BIN}")
    inst = Instance()
    try:
        inst.start("imapd")
        if have("smtpd"):
            inst.start("smtpd")
        yield inst
    finally:
        inst.stop_all()


def make_target(srv):
    n = next(_users)
    user = f"u{n}@example.test"
    if isinstance(srv, External):
        t = Target(srv.host, srv.imap, srv.imaps, user, PASSWORD)
        t.cert = srv.cert
        return t
    srv.add_user(user)
    smtp = srv.port("smtp") if "smtpd" in srv.procs else None
    t = Target("127.0.0.1", srv.port("imap"), srv.port("imaps"), user, PASSWORD,
               smtp_port=smtp)
    t.cert = srv.cert        # the server's self-signed certificate, for real clients
    return t


@pytest.fixture
def target(imap_server):
    return make_target(imap_server)


@pytest.fixture
def target2(imap_server):
    return make_target(imap_server)
