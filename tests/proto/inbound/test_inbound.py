"""Inbound checks end to end: smtpd's MX listener with its DNS pointed at
the outbound rig's test DNS server (rig.py, dnslib on a free loopback
port), messages sent from chosen 127.0.0.x source addresses, the stored
copy read from the recipient's maildir, its Authentication-Results header
parsed with python3-authres, and the SPF results cross-checked with
python3-spf asking the same test DNS server."""
import glob
import os
import smtplib

import pytest

from dnslib import QTYPE, RCODE, DNSRecord

from lib import instance as harness  # noqa: E402
from outbound.rig import DNS  # noqa: E402

authres = pytest.importorskip("authres")
spf = pytest.importorskip("spf")

HOST = "mail.example.test"
ALICE = "alice@example.test"


class ServfailDNS(DNS):
    """The rig's DNS server, with names that answer SERVFAIL."""

    def __init__(self, port):
        super().__init__(port)
        self.servfail = set()
        zones = self.zones
        orig = zones.resolve

        def resolve(request, handler):
            name = str(request.q.qname).lower().rstrip(".")
            if name in self.servfail:
                reply = request.reply()
                reply.header.rcode = RCODE.SERVFAIL
                return reply
            return orig(request, handler)
        zones.resolve = resolve


ZONE = [
    'spf-pass.test. 60 IN TXT "v=spf1 ip4:127.0.0.2 -all"',
    'spf-soft.test. 60 IN TXT "v=spf1 ip4:127.0.0.2 ~all"',
    'spf-neutral.test. 60 IN TXT "v=spf1 ?all"',
    'spf-inc.test. 60 IN TXT "v=spf1 include:spf-pass.test -all"',
    'spf-mx.test. 60 IN TXT "v=spf1 mx -all"',
    'spf-mx.test. 60 IN MX 10 mx1.spf-mx.test.',
    'mx1.spf-mx.test. 60 IN A 127.0.0.4',
    'spf-a.test. 60 IN TXT "v=spf1 a:host.spf-a.test/30 -all"',
    'host.spf-a.test. 60 IN A 127.0.0.5',
    'spf-red.test. 60 IN TXT "v=spf1 redirect=spf-pass.test"',
    'spf-exists.test. 60 IN TXT "v=spf1 exists:%{i}.allow.spf-exists.test -all"',
    '127.0.0.3.allow.spf-exists.test. 60 IN A 127.0.0.2',
    'spf-two.test. 60 IN TXT "v=spf1 -all"',
    'spf-two.test. 60 IN TXT "v=spf1 +all"',
    'spf-bad.test. 60 IN TXT "v=spf1 ip4:999.1.1.1 -all"',
    'spf-voids.test. 60 IN TXT "v=spf1 a:n1.spf-voids.test a:n2.spf-voids.test '
    'a:n3.spf-voids.test +all"',
    'spf-loop.test. 60 IN TXT "v=spf1 include:spf-loop.test -all"',
    'spf-exp.test. 60 IN TXT "v=spf1 -all exp=why.spf-exp.test"',
    'why.spf-exp.test. 60 IN TXT "%{i} may not send for %{d}"',
    'spf-temp.test. 60 IN TXT "v=spf1 a:broken.spf-temp.test -all"',
    'helo.spf-pass.test. 60 IN TXT "v=spf1 ip4:127.0.0.2 -all"',
    'spf-none.test. 60 IN A 127.0.0.9',
    # FCrDNS: 127.0.0.2 confirms, 127.0.0.3's name points elsewhere.
    '2.0.0.127.in-addr.arpa. 60 IN PTR host.fc.test.',
    'host.fc.test. 60 IN A 127.0.0.2',
    '3.0.0.127.in-addr.arpa. 60 IN PTR liar.fc.test.',
    'liar.fc.test. 60 IN A 127.0.0.99',
]


class In:
    def __init__(self, **config):
        self.dns_port = harness.free_port()
        self.dns = ServfailDNS(self.dns_port)
        for line in ZONE:
            self.dns.zones.add(line)
        self.dns.servfail.add("broken.spf-temp.test")
        base = {"dns_servers": f"127.0.0.1:{self.dns_port}"}
        base.update(config)
        self.inst = harness.Instance(extra_config=base)
        self.inst.add_user(ALICE)
        self.inst.start("smtpd")
        self.sent = 0

    def send(self, sender, src="127.0.0.2", helo="client.test", body=None,
             rcpt=ALICE, extra_headers=""):
        self.sent += 1
        body = body or (f"From: <{sender or 'x@' + helo}>\r\nTo: <{rcpt}>\r\n"
                        f"Subject: inbound {self.sent}\r\n{extra_headers}\r\n"
                        f"Hello {self.sent}.\r\n")
        with smtplib.SMTP("127.0.0.1", self.inst.port("smtp"), local_hostname=helo,
                          source_address=(src, 0), timeout=120) as c:
            c.sendmail(sender, [rcpt], body.encode())
        return self.sent

    def stored(self, n, mailbox=None):
        """The stored copy of message n (by its Subject), and the name of
        the mailbox directory's postroom-mailbox record holding it."""
        base = os.path.join(self.inst.data_dir, "mail", "example.test", "alice")
        for f in glob.glob(os.path.join(base, "*", "cur", "*")):
            data = open(f, "rb").read()
            if f"Subject: inbound {n}\r\n".encode() in data:
                meta = open(os.path.join(os.path.dirname(os.path.dirname(f)),
                                         "postroom-mailbox"), "rb").read()
                return data.decode(), meta.decode(errors="replace")
        raise AssertionError(f"message {n} not stored")


@pytest.fixture
def inb():
    i = In()
    yield i
    i.inst.stop_all()
    i.dns.stop()


def ar_of(msg):
    ars = [ln for ln in unfold(msg) if ln.lower().startswith("authentication-results:")]
    assert len(ars) >= 1, msg
    return ars, authres.AuthenticationResultsHeader.parse(ars[0])


def unfold(msg):
    head = msg.split("\r\n\r\n", 1)[0]
    out = []
    for ln in head.split("\r\n"):
        if ln[:1] in (" ", "\t") and out:
            out[-1] += " " + ln.strip()
        else:
            out.append(ln)
    return out


def spf_of(ar):
    res = [r for r in ar.results if r.method == "spf"]
    assert len(res) == 1
    return res[0]


def pyspf(inb, ip, sender, helo):
    """python3-spf's verdict with its DNS pointed at the test server."""
    def lookup(name, qtype, tcpfallback=True, timeout=30):
        q = DNSRecord.question(name, qtype)
        a = DNSRecord.parse(q.send("127.0.0.1", inb.dns_port, timeout=30))
        if a.header.rcode == RCODE.SERVFAIL:
            raise spf.TempError("DNS SERVFAIL")
        out = []
        for rr in a.rr:
            t = QTYPE[rr.rtype]
            if t != qtype:
                continue
            if t in ("A", "AAAA"):
                out.append(((name, t), str(rr.rdata)))
            elif t == "MX":
                out.append(((name, t), (rr.rdata.preference,
                                        str(rr.rdata.label).rstrip("."))))
            elif t == "PTR":
                out.append(((name, t), str(rr.rdata.label).rstrip(".")))
            elif t == "TXT":
                out.append(((name, t), list(rr.rdata.data)))
        return out
    saved = spf.DNSLookup
    spf.DNSLookup = lookup
    try:
        return spf.query(ip, sender, helo, querytime=30).check()[0]
    finally:
        spf.DNSLookup = saved


CASES = [
    ("u@spf-pass.test", "127.0.0.2", "pass"),
    ("u@spf-pass.test", "127.0.0.3", "fail"),
    ("u@spf-soft.test", "127.0.0.3", "softfail"),
    ("u@spf-neutral.test", "127.0.0.3", "neutral"),
    ("u@spf-inc.test", "127.0.0.2", "pass"),
    ("u@spf-inc.test", "127.0.0.3", "fail"),
    ("u@spf-mx.test", "127.0.0.4", "pass"),
    ("u@spf-mx.test", "127.0.0.3", "fail"),
    ("u@spf-a.test", "127.0.0.6", "pass"),
    ("u@spf-a.test", "127.0.0.9", "fail"),
    ("u@spf-red.test", "127.0.0.2", "pass"),
    ("u@spf-exists.test", "127.0.0.3", "pass"),
    ("u@spf-exists.test", "127.0.0.2", "fail"),
    ("u@spf-two.test", "127.0.0.2", "permerror"),
    ("u@spf-bad.test", "127.0.0.2", "permerror"),
    ("u@spf-voids.test", "127.0.0.2", "permerror"),
    ("u@spf-loop.test", "127.0.0.2", "permerror"),
    ("u@spf-none.test", "127.0.0.2", "none"),
    ("u@no-such-domain.test", "127.0.0.2", "none"),
    ("u@spf-temp.test", "127.0.0.2", "temperror"),
]


def test_spf_results(inb):
    for sender, ip, want in CASES:
        n = inb.send(sender, src=ip)
        msg, meta = inb.stored(n)
        _, ar = ar_of(msg)
        assert ar.authserv_id == HOST
        r = spf_of(ar)
        assert r.result == want, (sender, ip, msg)
        assert r.properties[0].type == "smtp" and r.properties[0].name == "mailfrom"
        assert r.properties[0].value == sender
        # python3-spf agrees (it folds temperror/permerror the same way).
        assert pyspf(inb, ip, sender, "client.test") == want, (sender, ip)
        # SPF alone never files a message as spam.
        assert "Junk" not in meta


def test_spf_null_sender_uses_helo(inb):
    n = inb.send("", src="127.0.0.2", helo="helo.spf-pass.test")
    msg, _ = inb.stored(n)
    r = spf_of(ar_of(msg)[1])
    assert r.result == "pass"
    assert (r.properties[0].type, r.properties[0].name) == ("smtp", "helo")
    assert r.properties[0].value == "helo.spf-pass.test"
    n = inb.send("", src="127.0.0.3", helo="helo.spf-pass.test")
    assert spf_of(ar_of(inb.stored(n)[0])[1]).result == "fail"


def test_forged_ar_removed(inb):
    forged = (f"Authentication-Results: {HOST}; spf=pass smtp.mailfrom=x@y\r\n"
              f"Authentication-Results: (comment) {HOST.upper()};\r\n dkim=pass\r\n"
              "Authentication-Results: other.example; spf=fail smtp.mailfrom=a@b\r\n")
    n = inb.send("u@spf-pass.test", src="127.0.0.3", extra_headers=forged)
    msg, _ = inb.stored(n)
    ars, ar = ar_of(msg)
    ours = [a for a in ars if HOST in a.lower()]
    assert len(ours) == 1, msg
    assert spf_of(ar).result == "fail"
    assert "other.example; spf=fail" in msg
    assert msg.index("Authentication-Results: " + HOST) < msg.index("Subject:")


def test_submission_not_checked(inb):
    """Authenticated submission gets no Authentication-Results."""
    inb.inst.add_user("bob@example.test")
    with smtplib.SMTP("127.0.0.1", inb.inst.port("submission"), timeout=120) as c:
        c.starttls(context=harness.client_tls_context())
        c.login("bob@example.test", harness.PASSWORD)
        c.sendmail("bob@example.test", [ALICE],
                   b"From: <bob@example.test>\r\nSubject: inbound 999\r\n\r\nhi\r\n")
    msg, _ = inb.stored(999)
    assert "Authentication-Results" not in msg


# ---- DKIM ----

import base64  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402

dkim = pytest.importorskip("dkim")
nacl_signing = pytest.importorskip("nacl.signing")


def rsa_key(bits=2048):
    """(private PEM, base64 SubjectPublicKeyInfo) made with openssl."""
    pem = subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                          f"rsa_keygen_bits:{bits}"], capture_output=True,
                         check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubout", "-outform", "DER"], input=pem,
                         capture_output=True, check=True).stdout
    return pem, base64.b64encode(der).decode()


def ed_key():
    sk = nacl_signing.SigningKey.generate()
    return base64.b64encode(bytes(sk)), base64.b64encode(bytes(sk.verify_key)).decode()


def txt_line(name, data):
    # dnslib wants long TXT data in strings of at most 255 octets.
    parts = " ".join(f'"{data[i:i + 250]}"' for i in range(0, len(data), 250))
    return f"{name}. 60 IN TXT {parts}"


@pytest.fixture(scope="module")
def keys():
    rsa_pem, rsa_pub = rsa_key()
    small_pem, small_pub = rsa_key(768) if True else (None, None)
    ed_priv, ed_pub = ed_key()
    return {"rsa": (rsa_pem, rsa_pub), "small": (small_pem, small_pub),
            "ed": (ed_priv, ed_pub)}


@pytest.fixture
def dk(keys):
    i = In()
    z = i.dns.zones
    z.add(txt_line("rsa._domainkey.dk.test", "v=DKIM1; k=rsa; p=" + keys["rsa"][1]))
    z.add(txt_line("ed._domainkey.dk.test", "v=DKIM1; k=ed25519; p=" + keys["ed"][1]))
    z.add(txt_line("small._domainkey.dk.test", "v=DKIM1; k=rsa; p=" + keys["small"][1]))
    z.add('dk.test. 60 IN TXT "v=spf1 ip4:127.0.0.2 -all"')
    yield i
    i.inst.stop_all()
    i.dns.stop()


def make_msg(n, sender="a@dk.test", body="Hello there.\r\nSecond line.\r\n"):
    return (f"From: Alice <{sender}>\r\nTo: <{ALICE}>\r\nSubject: inbound {n}\r\n"
            f"Date: Mon, 07 Dec 2026 10:00:00 +0000\r\nMessage-ID: <{n}@dk.test>\r\n"
            f"\r\n{body}").encode()


def sign(msg, keys, which, canon=(b"relaxed", b"relaxed"), length=False,
         domain=b"dk.test"):
    priv = keys[which][0]
    alg = b"ed25519-sha256" if which == "ed" else b"rsa-sha256"
    sel = which.encode()
    sig = dkim.sign(msg, sel, domain, priv, canonicalize=canon,
                    signature_algorithm=alg, length=length,
                    include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    return sig.replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n") + msg


def send_raw(inb, raw, sender="a@dk.test", src="127.0.0.2"):
    with smtplib.SMTP("127.0.0.1", inb.inst.port("smtp"), local_hostname="client.test",
                      source_address=(src, 0), timeout=120) as c:
        c.sendmail(sender, [ALICE], raw)


def dkim_of(ar):
    return [r for r in ar.results if r.method == "dkim"]


def prop(r, name):
    for p in r.properties:
        if f"{p.type}.{p.name}" == name:
            return p.value
    return None


def dk_send(dk, raw_fn):
    dk.sent += 1
    n = dk.sent + 500
    send_raw(dk, raw_fn(n))
    msg, meta = dk.stored(n)
    return msg, meta, ar_of(msg)[1]


def test_dkim_rsa_and_ed25519_pass(dk, keys):
    for which, canon in (("rsa", (b"relaxed", b"relaxed")), ("ed", (b"simple", b"simple")),
                         ("rsa", (b"simple", b"relaxed")), ("ed", (b"relaxed", b"simple"))):
        msg, _, ar = dk_send(dk, lambda n: sign(make_msg(n), keys, which, canon))
        res = dkim_of(ar)
        assert len(res) == 1, msg
        assert res[0].result == "pass", (which, canon, msg)
        assert prop(res[0], "header.d") == "dk.test"
        assert prop(res[0], "header.s") == which
        assert prop(res[0], "header.a") == ("ed25519-sha256" if which == "ed"
                                            else "rsa-sha256")
        assert spf_of(ar).result == "pass"


def test_dkim_every_signature(dk, keys):
    def both(n):
        m = make_msg(n)
        return sign(sign(m, keys, "rsa"), keys, "ed")
    msg, _, ar = dk_send(dk, both)
    res = dkim_of(ar)
    assert sorted((prop(r, "header.s"), r.result) for r in res) == \
        [("ed", "pass"), ("rsa", "pass")], msg


def test_dkim_tampered(dk, keys):
    msg, _, ar = dk_send(dk, lambda n: sign(make_msg(n), keys, "rsa").replace(
        b"Second line.", b"Second lime."))
    assert [r.result for r in dkim_of(ar)] == ["fail"], msg
    msg, _, ar = dk_send(dk, lambda n: sign(make_msg(n), keys, "ed").replace(
        b"Date: Mon", b"Date: Tue"))
    assert [r.result for r in dkim_of(ar)] == ["fail"], msg


def test_dkim_length_tag_reported(dk, keys):
    def appended(n):
        return sign(make_msg(n), keys, "rsa", length=True) + b"Appended by someone.\r\n"
    msg, _, ar = dk_send(dk, appended)
    res = dkim_of(ar)
    assert [r.result for r in res] == ["pass"], msg
    assert "l=" in msg.split("dkim=pass", 1)[1].split("\r\n", 1)[0]


def test_dkim_small_rsa_and_missing_key(dk, keys):
    msg, _, ar = dk_send(dk, lambda n: sign(make_msg(n), keys, "small"))
    assert [r.result for r in dkim_of(ar)] == ["permerror"], msg
    def nokey(n):
        return sign(make_msg(n), keys, "rsa", domain=b"nokey.test").replace(
            b"a@dk.test", b"a@nokey.test")
    msg, _, ar = dk_send(dk, nokey)
    assert [r.result for r in dkim_of(ar)] == ["permerror"], msg


def test_dkim_none(dk):
    msg, _, ar = dk_send(dk, lambda n: make_msg(n))
    assert [r.result for r in dkim_of(ar)] == ["none"], msg


# ---- DMARC ----

@pytest.fixture
def dm(keys):
    i = In()
    z = i.dns.zones
    for dom, pol in (("rej.test", "reject"), ("quar.test", "quarantine"),
                     ("nopol.test", "none")):
        z.add(f'{dom}. 60 IN TXT "v=spf1 ip4:127.0.0.2 -all"')
        z.add(f'_dmarc.{dom}. 60 IN TXT "v=DMARC1; p={pol}; rua=mailto:r@{dom}"')
        z.add(txt_line(f"rsa._domainkey.{dom}", "v=DKIM1; k=rsa; p=" + keys["rsa"][1]))
    # sub.rej.test has no record of its own: the organizational domain's
    # sp= applies.
    z.add('_dmarc.sp.test. 60 IN TXT "v=DMARC1; p=none; sp=reject"')
    z.add('sub.sp.test. 60 IN TXT "v=spf1 -all"')
    i.dns.servfail.add("_dmarc.tempdm.test")
    z.add('tempdm.test. 60 IN TXT "v=spf1 -all"')
    yield i
    i.inst.stop_all()
    i.dns.stop()


def dmarc_of(ar):
    res = [r for r in ar.results if r.method == "dmarc"]
    assert len(res) == 1
    return res[0]


def dm_try(dm, n, raw, sender, src):
    """Sends; returns the SMTP error (code, text) or None."""
    try:
        send_raw(dm, raw, sender=sender, src=src)
    except smtplib.SMTPDataError as e:
        return e.smtp_code, e.smtp_error.decode()
    except smtplib.SMTPResponseException as e:
        return e.smtp_code, e.smtp_error.decode()
    return None


def test_dmarc_good_signed_message_passes_all(dm, keys):
    raw = sign(make_msg(601, sender="a@rej.test"), keys, "rsa", domain=b"rej.test")
    assert dm_try(dm, 601, raw, "a@rej.test", "127.0.0.2") is None
    msg, meta = dm.stored(601)
    ar = ar_of(msg)[1]
    assert spf_of(ar).result == "pass"
    assert [r.result for r in dkim_of(ar)] == ["pass"]
    d = dmarc_of(ar)
    assert d.result == "pass"
    assert prop(d, "header.from") == "rej.test"


def test_dmarc_reject_forged_never_stored(dm):
    # Forged: From: rej.test, sent from an address SPF does not allow,
    # no signature.
    raw = make_msg(602, sender="a@rej.test")
    err = dm_try(dm, 602, raw, "a@rej.test", "127.0.0.3")
    assert err is not None and err[0] == 550 and "5.7.1" in err[1], err
    with pytest.raises(AssertionError):
        dm.stored(602)
    # Envelope from elsewhere (SPF passes there, but is not aligned).
    dm.dns.zones.add('elsewhere.test. 60 IN TXT "v=spf1 ip4:127.0.0.2 -all"')
    err = dm_try(dm, 603, make_msg(603, sender="a@rej.test"), "b@elsewhere.test",
                 "127.0.0.2")
    assert err is not None and err[0] == 550, err
    with pytest.raises(AssertionError):
        dm.stored(603)


def test_dmarc_reject_aligned_dkim_saves_it(dm, keys):
    # SPF fails, but the aligned DKIM signature passes: delivered.
    raw = sign(make_msg(604, sender="a@rej.test"), keys, "rsa", domain=b"rej.test")
    assert dm_try(dm, 604, raw, "a@rej.test", "127.0.0.3") is None
    msg, meta = dm.stored(604)
    ar = ar_of(msg)[1]
    assert spf_of(ar).result == "fail"
    assert dmarc_of(ar).result == "pass"


def test_dmarc_quarantine_goes_to_junk(dm):
    raw = make_msg(605, sender="a@quar.test")
    assert dm_try(dm, 605, raw, "a@quar.test", "127.0.0.3") is None
    msg, meta = dm.stored(605)
    assert "Junk" in meta, meta
    assert dmarc_of(ar_of(msg)[1]).result == "fail"
    # A passing one from the same domain goes to INBOX.
    assert dm_try(dm, 606, make_msg(606, sender="a@quar.test"), "a@quar.test",
                  "127.0.0.2") is None
    msg, meta = dm.stored(606)
    assert "Junk" not in meta and "INBOX" in meta, meta


def test_dmarc_none_and_sp_and_temperror(dm):
    assert dm_try(dm, 607, make_msg(607, sender="a@nopol.test"), "a@nopol.test",
                  "127.0.0.3") is None
    msg, meta = dm.stored(607)
    assert dmarc_of(ar_of(msg)[1]).result == "fail"
    assert "INBOX" in meta
    err = dm_try(dm, 608, make_msg(608, sender="a@sub.sp.test"), "a@sub.sp.test",
                 "127.0.0.3")
    assert err is not None and err[0] == 550, err
    # A DNS failure is never a reason to refuse.
    assert dm_try(dm, 609, make_msg(609, sender="a@tempdm.test"), "a@tempdm.test",
                  "127.0.0.3") is None
    assert dmarc_of(ar_of(dm.stored(609)[0])[1]).result == "temperror"
    # No From: domain with a policy: dmarc=none.
    assert dm_try(dm, 610, make_msg(610, sender="a@spf-pass.test"), "a@spf-pass.test",
                  "127.0.0.2") is None
    assert dmarc_of(ar_of(dm.stored(610)[0])[1]).result == "none"


def test_dmarc_policy_off():
    i = In(dmarc_policy="no")
    try:
        i.dns.zones.add('rej.test. 60 IN TXT "v=spf1 ip4:127.0.0.2 -all"')
        i.dns.zones.add('_dmarc.rej.test. 60 IN TXT "v=DMARC1; p=reject"')
        assert dm_try(i, 611, make_msg(611, sender="a@rej.test"), "a@rej.test",
                      "127.0.0.3") is None
        msg, meta = i.stored(611)
        assert dmarc_of(ar_of(msg)[1]).result == "fail"
        assert "INBOX" in meta
    finally:
        i.inst.stop_all()
        i.dns.stop()


def test_received_fcrdns(inb):
    n = inb.send("u@spf-pass.test", src="127.0.0.2")
    msg, _ = inb.stored(n)
    rcv = [ln for ln in unfold(msg) if ln.startswith("Received:")][0]
    assert "from client.test (host.fc.test [127.0.0.2])" in rcv, rcv
    n = inb.send("u@spf-pass.test", src="127.0.0.3")
    msg, _ = inb.stored(n)
    rcv = [ln for ln in unfold(msg) if ln.startswith("Received:")][0]
    assert "from client.test ([127.0.0.3])" in rcv, rcv
    assert "liar" not in msg
