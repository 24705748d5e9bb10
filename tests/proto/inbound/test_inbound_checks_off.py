"""inbound_checks = no: an MX behind a gateway that already checked. The
MX listener makes no SPF, DKIM-key or DMARC query and adds no
Authentication-Results, but still removes a forged one claiming our
hostname, still confirms the client's name for Received: and still asks
the DNS blocklists. With yes (the default) the same messages are checked
as before. The test DNS server (the outbound rig's, dnslib on a free
loopback port) records every question it is asked."""
import base64
import glob
import os
import smtplib
import subprocess
import threading

import pytest

from lib import instance as harness  # noqa: E402
from outbound.rig import DNS  # noqa: E402

dkim = pytest.importorskip("dkim")

HOST = "mail.example.test"
ALICE = "alice@example.test"


class CountingDNS(DNS):
    """The rig's DNS server, remembering every (name, type) asked."""

    def __init__(self, port):
        super().__init__(port)
        self.asked = []
        self.lock = threading.Lock()
        orig = self.zones.resolve

        def resolve(request, handler):
            with self.lock:
                self.asked.append((str(request.q.qname).lower().rstrip("."),
                                   request.q.qtype))
            return orig(request, handler)
        self.zones.resolve = resolve

    def names(self):
        with self.lock:
            return [n for n, _ in self.asked]


def rsa_key():
    pem = subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                          "rsa_keygen_bits:2048"], capture_output=True,
                         check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubout", "-outform", "DER"], input=pem,
                         capture_output=True, check=True).stdout
    return pem, base64.b64encode(der).decode()


@pytest.fixture(scope="module")
def key():
    return rsa_key()


def start(key, checks):
    dns = CountingDNS(harness.free_port())
    z = dns.zones
    z.add('rej.test. 60 IN TXT "v=spf1 ip4:127.0.0.2 -all"')
    z.add('_dmarc.rej.test. 60 IN TXT "v=DMARC1; p=reject"')
    data = "v=DKIM1; k=rsa; p=" + key[1]
    parts = " ".join(f'"{data[i:i + 250]}"' for i in range(0, len(data), 250))
    z.add(f"rsa._domainkey.rej.test. 60 IN TXT {parts}")
    z.add("3.0.0.127.in-addr.arpa. 60 IN PTR host.fc.test.")
    z.add("host.fc.test. 60 IN A 127.0.0.3")
    config = {"dns_servers": f"127.0.0.1:{dns.port}", "dnsbl": "bl.test"}
    if checks is not None:
        config["inbound_checks"] = checks
    inst = harness.Instance(extra_config=config)
    inst.add_user(ALICE)
    inst.start("smtpd")
    return inst, dns


def message(n, key=None, extra=""):
    msg = (f"From: <a@rej.test>\r\nTo: <{ALICE}>\r\nSubject: inbound {n}\r\n"
           f"Message-ID: <{n}@rej.test>\r\n{extra}\r\nHello {n}.\r\n").encode()
    if key is None:
        return msg
    sig = dkim.sign(msg, b"rsa", b"rej.test", key[0],
                    include_headers=[b"from", b"to", b"subject", b"message-id"])
    return sig.replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n") + msg


def send(inst, raw):
    """Sends from 127.0.0.3 (SPF fails there); the SMTP error or None."""
    try:
        with smtplib.SMTP("127.0.0.1", inst.port("smtp"), local_hostname="client.test",
                          source_address=("127.0.0.3", 0), timeout=120) as c:
            c.sendmail("a@rej.test", [ALICE], raw)
    except smtplib.SMTPResponseException as e:
        return e.smtp_code
    return None


def stored(inst, n):
    base = os.path.join(inst.data_dir, "mail", "example.test", "alice")
    for f in glob.glob(os.path.join(base, "*", "cur", "*")):
        data = open(f, "rb").read().decode()
        if f"Subject: inbound {n}\r\n" in data:
            return data
    return None


def head(msg):
    return msg.split("\r\n\r\n", 1)[0]


FORGED = (f"Authentication-Results: {HOST}; spf=pass smtp.mailfrom=a@rej.test\r\n"
          "Authentication-Results: gateway.example; spf=pass smtp.mailfrom=a@rej.test\r\n")


def check_names(names):
    return [n for n in names if n == "rej.test" or n.endswith("._domainkey.rej.test")
            or n.startswith("_dmarc.")]


def test_inbound_checks_off(key):
    inst, dns = start(key, "no")
    try:
        # Signed, with a forged A-R of ours and the gateway's A-R.
        assert send(inst, message(1, key, FORGED)) is None
        msg = stored(inst, 1)
        assert msg is not None
        assert f"Authentication-Results: {HOST}" not in head(msg), msg
        assert "Authentication-Results: gateway.example; spf=pass" in head(msg)
        # Received: still names the confirmed client.
        assert "from client.test (host.fc.test [127.0.0.3])" in msg, msg
        # Unsigned, SPF would fail, DMARC p=reject: no DMARC, so stored.
        assert send(inst, message(2)) is None
        msg = stored(inst, 2)
        assert msg is not None and "Authentication-Results" not in head(msg), msg
        names = dns.names()
        assert check_names(names) == [], names
        # The blocklist and the client's name were still asked.
        assert "3.0.0.127.bl.test" in names, names
        assert "3.0.0.127.in-addr.arpa" in names, names
        assert "spf=" not in inst.log("smtpd")
    finally:
        inst.stop_all()
        dns.stop()


@pytest.mark.parametrize("checks", ["yes", None])
def test_inbound_checks_on(key, checks):
    inst, dns = start(key, checks)
    try:
        assert send(inst, message(1, key, FORGED)) is None
        msg = stored(inst, 1)
        ours = [ln for ln in head(msg).split("\r\n")
                if ln.startswith(f"Authentication-Results: {HOST}")]
        assert len(ours) == 1, msg
        assert "dkim=pass" in msg and "spf=fail" in msg and "dmarc=pass" in msg, msg
        assert "Authentication-Results: gateway.example; spf=pass" in head(msg)
        # Unsigned, SPF fails, p=reject: refused, nothing stored.
        assert send(inst, message(2)) == 550
        assert stored(inst, 2) is None
        names = dns.names()
        assert "rej.test" in names and "rsa._domainkey.rej.test" in names, names
        assert "_dmarc.rej.test" in names, names
    finally:
        inst.stop_all()
        dns.stop()
