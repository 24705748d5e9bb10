"""Debian's OpenDKIM, OpenDMARC and clamav-milter (with clamd) as smtpd's
milters, unchanged: each started privately in the foreground as the user
running the tests, with its own config in a temporary directory, on a free
loopback port or a unix socket, and always stopped. Nothing leaves the
machine:
- OpenDKIM resolves through libunbound, pointed (ResolverConfiguration) at
  the outbound rig's DNS server on a loopback port.
- OpenDMARC can only ask the libc resolver (/etc/resolv.conf, port 53): it
  runs in a private network and mount namespace (netns_dns.py, unshare)
  whose only nameserver is a test DNS server on that namespace's own
  loopback; smtpd reaches it over a unix socket.
- clamd loads a one-line signature database written here (the EICAR test
  file's MD5), so no download is needed.
A package that is missing skips its tests, except under CI=true, where it
fails them (as a missing python3-milter or rspamd would be a broken CI
image)."""
import base64
import hashlib
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time

import pytest

from .test_milter import ALICE, harness, load_rig, mailbox, start

HERE = os.path.dirname(os.path.abspath(__file__))
OPENDKIM = "/usr/sbin/opendkim"
OPENDMARC = "/usr/sbin/opendmarc"
CLAMD = "/usr/sbin/clamd"
CLAMAV_MILTER = "/usr/sbin/clamav-milter"
EICAR = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!"
         b"$H+H*")
# A generous bound, only so that a broken daemon cannot hang the suite
# (clamd loads its database first, which takes long on a loaded machine).
START_LIMIT = 300


def need(path, package, present=None):
    if present is None:
        present = os.access(path, os.X_OK)
    if present:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{package} is not installed (scripts/deps.sh test)")
    pytest.skip(f"{package} (Debian package) is not installed")


class Daemon:
    """A foreground daemon in its own session, its output in a log file,
    ready once its socket (("127.0.0.1", port) or a unix path) accepts."""

    def __init__(self, dir, name, argv, sock, ready_line=False):
        self.dir = dir
        self.name = name
        self.log = open(os.path.join(dir, f"{name}.out"), "w+")
        self.p = subprocess.Popen(argv, cwd=dir, stdout=self.log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + START_LIMIT
        while time.monotonic() < deadline:
            if self.p.poll() is not None:
                raise AssertionError(f"{name} exited {self.p.returncode}: "
                                     f"{self.text()[-3000:]}")
            try:
                if isinstance(sock, str):
                    s = socket.socket(socket.AF_UNIX)
                    s.settimeout(5)
                    s.connect(sock)
                    s.close()
                else:
                    socket.create_connection(sock, timeout=5).close()
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise AssertionError(f"{name} did not listen: {self.text()[-3000:]}")

    def text(self):
        self.log.flush()
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGTERM)
                self.p.wait(timeout=60)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.p.wait()
        self.log.close()


def write(dir, name, text):
    path = os.path.join(dir, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def rsa_key(bits=2048):
    """(private PEM, base64 SubjectPublicKeyInfo) made with openssl."""
    pem = subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                          f"rsa_keygen_bits:{bits}"], capture_output=True,
                         check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubout", "-outform", "DER"], input=pem,
                         capture_output=True, check=True).stdout
    return pem, base64.b64encode(der).decode()


def txt_line(name, data):
    # dnslib wants long TXT data in strings of at most 255 octets.
    parts = " ".join(f'"{data[i:i + 250]}"' for i in range(0, len(data), 250))
    return f"{name}. 60 IN TXT {parts}"


def send_raw(inst, raw, sender, rcpt=ALICE):
    """(code, text) of the end of data; the message is bytes with CRLF."""
    s = smtplib.SMTP("127.0.0.1", inst.port("smtp"), timeout=300)
    try:
        s.ehlo("client.sender.test")
        s.mail(sender)
        s.rcpt(rcpt)
        try:
            code, text = s.data(raw)
        except smtplib.SMTPDataError as e:
            code, text = e.smtp_code, e.smtp_error
        s.quit()
    finally:
        s.close()
    return code, text.decode(errors="replace") if isinstance(text, bytes) else text


def stored(inst, subject, box="INBOX"):
    found = [m for m in mailbox(inst, ALICE, box) if f"Subject: {subject}\r\n".encode() in m]
    assert len(found) == 1, f"{subject!r}: {len(found)} stored in {box}"
    return found[0].decode(errors="replace")


def header_values(msg, name):
    """The unfolded values of every field called name in msg's header."""
    res, keep = [], False
    for line in msg.split("\r\n\r\n", 1)[0].split("\r\n"):
        if line[:1] in (" ", "\t"):
            if keep:
                res[-1] += " " + line.strip()
            continue
        keep = line.lower().startswith(name.lower() + ":")
        if keep:
            res.append(line[len(name) + 1:].strip())
    return res


# ---- OpenDKIM ----

DKIM_AUTHSERV = "dkim.interop.test"


def opendkim_conf(dir, name, port, dns_port, lines):
    # libunbound refuses loopback servers unless told otherwise and
    # answers for .test (a special-use name) by itself; no DNSSEC here.
    unbound = write(dir, "unbound.conf", (
        "server:\n    do-not-query-localhost: no\n"
        "    local-zone: \"test.\" nodefault\n"
        "    module-config: \"iterator\"\n"
        "forward-zone:\n    name: \".\"\n"
        f"    forward-addr: 127.0.0.1@{dns_port}\n"))
    base = [f"Socket inet:{port}@127.0.0.1", "Syslog no", "UMask 007",
            f"PidFile {os.path.join(dir, name + '.pid')}",
            f"ResolverConfiguration {unbound}", f"AuthservID {DKIM_AUTHSERV}",
            "RequireSafeKeys no", "DNSTimeout 120"]
    return write(dir, f"{name}.conf", "\n".join(base + lines) + "\n")


class DkimRig:
    """The outbound rig's DNS server serving dk.test's key, OpenDKIM as a
    verifier (Mode v) and as a signer for example.test (Mode s, the client
    127.0.0.1 is one of its default InternalHosts), both milters of one
    smtpd."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="postroom-opendkim-")
        rig = load_rig()
        self.dns = rig.DNS(harness.free_port())
        self.key, pub = rsa_key()
        self.dns.zones.add(txt_line("sel._domainkey.dk.test", "v=DKIM1; k=rsa; p=" + pub))
        self.dns.zones.add('dk.test. 60 IN TXT "v=spf1 ip4:127.0.0.1 -all"')
        self.local_key, local_pub = rsa_key()
        self.local_txt = f"v=DKIM1; k=rsa; p={local_pub}"
        keyfile = os.path.join(self.dir, "local.key")
        with open(keyfile, "wb") as f:
            f.write(self.local_key)
        os.chmod(keyfile, 0o600)
        self.daemons = []
        try:
            vport, sport = harness.free_port(), harness.free_port()
            vconf = opendkim_conf(self.dir, "verify", vport, self.dns.port, ["Mode v"])
            sconf = opendkim_conf(self.dir, "sign", sport, self.dns.port, [
                "Mode s", "Domain example.test", "Selector local",
                f"KeyFile {keyfile}", "Canonicalization relaxed/relaxed"])
            for name, conf, port in (("verify", vconf, vport), ("sign", sconf, sport)):
                self.daemons.append(Daemon(self.dir, f"opendkim-{name}",
                                           [OPENDKIM, "-f", "-x", conf],
                                           ("127.0.0.1", port)))
            self.inst = start({"milter": f"inet:127.0.0.1:{vport}, inet:127.0.0.1:{sport}",
                               "milter_timeout": "300s",
                               "dns_servers": f"127.0.0.1:{self.dns.port}"})
        except BaseException:
            self.stop()
            raise

    def stop(self):
        if hasattr(self, "inst"):
            self.inst.stop_all()
        for d in self.daemons:
            d.stop()
        self.dns.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def dkr():
    need(OPENDKIM, "opendkim")
    r = DkimRig()
    yield r
    r.stop()


def dkim_msg(subject, sender="a@dk.test", body="Hello there.\r\nSecond line.\r\n"):
    return (f"From: Alice <{sender}>\r\nTo: <{ALICE}>\r\nSubject: {subject}\r\n"
            f"Date: Mon, 07 Dec 2026 10:00:00 +0000\r\n"
            f"Message-ID: <{subject.replace(' ', '-')}@dk.test>\r\n\r\n{body}").encode()


def dkim_sign(msg, key, canon):
    import dkim
    sig = dkim.sign(msg, b"sel", b"dk.test", key, canonicalize=canon,
                    include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    return sig.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + msg


def ar_results(msg, authserv, method):
    """The method=result words (with their properties, up to the next
    result) of the Authentication-Results fields that authserv wrote."""
    out = []
    for v in header_values(msg, "Authentication-Results"):
        if v.split(";", 1)[0].strip() == authserv:
            v = re.sub(r"\([^()]*\)", "", v)   # comments may hold ';'
            out += [p.strip() for p in v.split(";")[1:]
                    if p.strip().startswith(method + "=")]
    return out


@pytest.mark.parametrize("canon", ["relaxed", "simple"])
def test_opendkim_verifies_pass(dkr, canon):
    """A signed message: OpenDKIM's A-R says dkim=pass for header.d=dk.test.
    With simple/simple the header fields must reach it byte for byte."""
    subject = f"dkim pass {canon}"
    raw = dkim_sign(dkim_msg(subject), dkr.key, (canon.encode(), canon.encode()))
    code, text = send_raw(dkr.inst, raw, "a@dk.test")
    assert code == 250, text
    msg = stored(dkr.inst, subject)
    res = ar_results(msg, DKIM_AUTHSERV, "dkim")
    assert res and res[0].startswith("dkim=pass") and "header.d=dk.test" in res[0], msg


def test_opendkim_tampered_body_fails(dkr):
    subject = "dkim tampered"
    raw = dkim_sign(dkim_msg(subject), dkr.key, (b"relaxed", b"relaxed"))
    raw = raw.replace(b"Second line.", b"Second line, changed.")
    code, text = send_raw(dkr.inst, raw, "a@dk.test")
    assert code == 250, text
    res = ar_results(stored(dkr.inst, subject), DKIM_AUTHSERV, "dkim")
    assert res and res[0].startswith("dkim=fail"), res


def test_opendkim_signs_local_domain(dkr):
    """From example.test: the signer adds a DKIM-Signature that dkimpy
    verifies against the signer's public key."""
    import dkim
    subject = "dkim signed here"
    code, text = send_raw(dkr.inst, dkim_msg(subject, sender="bob@example.test"),
                          "bob@example.test")
    assert code == 250, text
    msg = stored(dkr.inst, subject)
    sigs = header_values(msg, "DKIM-Signature")
    assert sigs and "d=example.test" in sigs[0].replace(" ", ""), msg
    txt = dkr.local_txt.encode()

    def dnsfunc(name, timeout=5):
        return txt if name == b"local._domainkey.example.test." else None
    # Only the message as OpenDKIM saw it: our own trace fields and A-R
    # were above it, and they are not signed, so they change nothing.
    assert dkim.verify(msg.encode(), dnsfunc=dnsfunc), msg


# ---- clamav-milter and clamd ----

class Clam:
    """clamd on a unix socket with a one-signature database (the EICAR
    test file's MD5, so that nothing is downloaded), and two clamav-milters
    asking it, each on a free loopback port and each the milter of its own
    smtpd: one rejects infected mail, one quarantines it (Debian's default
    OnInfected); both add their X-Virus-Scanned / X-Virus-Status fields."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="postroom-clamav-")
        db = os.path.join(self.dir, "db")
        self.tmp = os.path.join(self.dir, "tmp")
        os.makedirs(db)
        os.makedirs(self.tmp)
        write(db, "test.hdb",
              f"{hashlib.md5(EICAR).hexdigest()}:{len(EICAR)}:Eicar-Test-Signature\n")
        self.clamd_sock = os.path.join(self.dir, "clamd.sock")
        clamd_conf = write(self.dir, "clamd.conf", "\n".join([
            f"LocalSocket {self.clamd_sock}", "Foreground yes",
            f"DatabaseDirectory {db}", f"TemporaryDirectory {self.tmp}",
            f"PidFile {self.dir}/clamd.pid", "LogSyslog no", "LogTime yes",
            f"LogFile {self.dir}/clamd.log", "LogVerbose yes",
            "ReadTimeout 300", "CommandReadTimeout 300"]) + "\n")
        self.daemons = []
        self.insts = {}
        try:
            self.daemons.append(Daemon(self.dir, "clamd", [CLAMD, "-c", clamd_conf],
                                       self.clamd_sock))
            for action in ("Reject", "Quarantine"):
                port = self.milter(action)
                self.insts[action] = start({"milter": f"inet:127.0.0.1:{port}",
                                            "milter_timeout": "300s"})
        except BaseException:
            self.stop()
            raise
        self.inst = self.insts["Reject"]

    def milter(self, on_infected):
        name = f"clamav-milter-{on_infected.lower()}"
        port = harness.free_port()
        conf = write(self.dir, f"{name}.conf", "\n".join([
            f"MilterSocket inet:{port}@127.0.0.1", "Foreground yes",
            f"ClamdSocket unix:{self.clamd_sock}", f"TemporaryDirectory {self.tmp}",
            f"PidFile {self.dir}/{name}.pid", "LogSyslog no",
            f"LogFile {self.dir}/{name}.log", "LogInfected Full",
            "LogClean Full", f"OnInfected {on_infected}", "OnClean Accept",
            "RejectMsg Infected: %v",
            "AddHeader Replace", "ReadTimeout 300"]) + "\n")
        self.daemons.append(Daemon(self.dir, name, [CLAMAV_MILTER, "-c", conf],
                                   ("127.0.0.1", port)))
        return port

    def stop(self):
        for i in self.insts.values():
            i.stop_all()
        for d in reversed(self.daemons):
            d.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def clam():
    need(CLAMD, "clamav-daemon")
    need(CLAMAV_MILTER, "clamav-milter")
    c = Clam()
    yield c
    c.stop()


def with_attachment(subject, payload):
    b64 = base64.encodebytes(payload).decode().replace("\n", "\r\n")
    return (f"From: <carol@sender.test>\r\nTo: <{ALICE}>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '-')}@sender.test>\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
            "--b1\r\nContent-Type: text/plain\r\n\r\nSee the attachment.\r\n"
            "--b1\r\nContent-Type: application/octet-stream\r\n"
            "Content-Disposition: attachment; filename=\"file.com\"\r\n"
            f"Content-Transfer-Encoding: base64\r\n\r\n{b64}--b1--\r\n").encode()


def test_clamav_rejects_eicar(clam):
    subject = "clamav eicar"
    code, text = send_raw(clam.inst, with_attachment(subject, EICAR), "carol@sender.test")
    assert code == 550 and "Eicar-Test-Signature" in text, (code, text)
    assert not [m for m in mailbox(clam.inst, ALICE, "INBOX") if subject.encode() in m]
    assert not [m for m in mailbox(clam.inst, ALICE, "Junk") if subject.encode() in m]


def test_clamav_clean_delivered_with_headers(clam):
    subject = "clamav clean"
    code, text = send_raw(clam.inst, with_attachment(subject, b"Just some bytes.\n" * 20),
                          "carol@sender.test")
    assert code == 250, text
    msg = stored(clam.inst, subject)
    assert header_values(msg, "X-Virus-Status") == ["Clean"], msg
    assert header_values(msg, "X-Virus-Scanned")[0].startswith("clamav-milter"), msg


# ---- OpenDMARC ----

DMARC_AUTHSERV = "dmarc.interop.test"
UNSHARE = shutil.which("unshare") or "/usr/bin/unshare"
DMARC_ZONE = [
    '_dmarc.dm.test. 60 IN TXT "v=DMARC1; p=reject"',
    'dm.test. 60 IN TXT "v=spf1 ip4:127.0.0.1 -all"',
    '_dmarc.dmnone.test. 60 IN TXT "v=DMARC1; p=none"',
]


def netns_usable():
    r = subprocess.run([UNSHARE, "-r", "-n", "-m", "true"], capture_output=True)
    return r.returncode == 0


class Dmarc:
    """OpenDKIM verifying (as in DkimRig), then OpenDMARC in a private
    network namespace (netns_dns.py) on a unix socket, its DNS answered
    there. OpenDMARC checks SPF itself (libspf2, in the namespace) and
    takes the DKIM results from the Authentication-Results that OpenDKIM,
    the milter before it, added (its TrustedAuthservIDs): the standard
    Postfix pairing. It rejects p=reject failures. smtpd's own DMARC policy
    is off, so that the verdict is OpenDMARC's."""

    def __init__(self, key_pub):
        self.dir = tempfile.mkdtemp(prefix="postroom-opendmarc-")
        rig = load_rig()
        self.dns = rig.DNS(harness.free_port())
        zone = DMARC_ZONE + [txt_line("sel._domainkey.dm.test", "v=DKIM1; k=rsa; p=" + key_pub)]
        for line in zone:
            self.dns.zones.add(line)
        zones = write(self.dir, "zones", "\n".join(zone) + "\n")
        self.sock = os.path.join(self.dir, "opendmarc.sock")
        # Its default IgnoreHosts is 127.0.0.1, where the tests connect from.
        ignore = write(self.dir, "ignore-hosts", "192.0.2.1\n")
        conf = write(self.dir, "opendmarc.conf", "\n".join([
            f"Socket local:{self.sock}", "Syslog false",
            f"PidFile {self.dir}/opendmarc.pid", f"AuthservID {DMARC_AUTHSERV}",
            f"TrustedAuthservIDs {DKIM_AUTHSERV}", f"IgnoreHosts {ignore}",
            "PublicSuffixList /usr/share/publicsuffix/public_suffix_list.dat",
            "SPFSelfValidate true", "SPFIgnoreResults true",
            "RejectFailures true", "FailureReports false", "SoftwareHeader true",
            "RequiredHeaders false", "UMask 0077", "DNSTimeout 120"]) + "\n")
        self.daemons = []
        try:
            dport = harness.free_port()
            dconf = opendkim_conf(self.dir, "verify", dport, self.dns.port, ["Mode v"])
            self.daemons.append(Daemon(self.dir, "opendkim", [OPENDKIM, "-f", "-x", dconf],
                                       ("127.0.0.1", dport)))
            self.daemons.append(Daemon(self.dir, "opendmarc", [
                UNSHARE, "-r", "-n", "-m", "/usr/bin/python3",
                os.path.join(HERE, "netns_dns.py"), zones, self.dir, "--",
                OPENDMARC, "-f", "-c", conf], self.sock))
            self.inst = start({"milter": f"inet:127.0.0.1:{dport}, unix:{self.sock}",
                               "milter_timeout": "300s", "dmarc_policy": "no",
                               "dns_servers": f"127.0.0.1:{self.dns.port}"})
        except BaseException:
            self.stop()
            raise

    def stop(self):
        if hasattr(self, "inst"):
            self.inst.stop_all()
        for d in reversed(self.daemons):
            d.stop()
        self.dns.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def dmarc_key():
    return rsa_key()


@pytest.fixture(scope="module")
def dmr(dmarc_key):
    need(OPENDKIM, "opendkim")
    need(OPENDMARC, "opendmarc")
    if not netns_usable():
        pytest.skip("no private network namespace here (unshare -r -n -m): OpenDMARC "
                    "could only ask the machine's resolver")
    r = Dmarc(dmarc_key[1])
    yield r
    r.stop()


def dmarc_msg(subject, from_domain):
    return (f"From: Boss <boss@{from_domain}>\r\nTo: <{ALICE}>\r\nSubject: {subject}\r\n"
            f"Date: Mon, 07 Dec 2026 10:00:00 +0000\r\n"
            f"Message-ID: <{subject.replace(' ', '-')}@{from_domain}>\r\n\r\n"
            "The DMARC test.\r\n").encode()


def test_opendmarc_pass_aligned_spf(dmr):
    subject = "dmarc spf pass"
    code, text = send_raw(dmr.inst, dmarc_msg(subject, "dm.test"), "bounce@dm.test")
    assert code == 250, text
    res = ar_results(stored(dmr.inst, subject), DMARC_AUTHSERV, "dmarc")
    assert res and res[0].startswith("dmarc=pass") and "header.from=dm.test" in res[0], res


def test_opendmarc_pass_aligned_dkim(dmr, dmarc_key):
    """SPF is not aligned (another envelope domain): the aligned DKIM pass
    in OpenDKIM's Authentication-Results makes it a pass, so OpenDMARC must
    see the header as OpenDKIM left it."""
    import dkim
    subject = "dmarc dkim pass"
    msg = dmarc_msg(subject, "dm.test")
    sig = dkim.sign(msg, b"sel", b"dm.test", dmarc_key[0],
                    include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    raw = sig.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + msg
    code, text = send_raw(dmr.inst, raw, "list@sender.test")
    assert code == 250, text
    res = ar_results(stored(dmr.inst, subject), DMARC_AUTHSERV, "dmarc")
    assert res and res[0].startswith("dmarc=pass"), res


def test_opendmarc_rejects_forged_p_reject(dmr):
    subject = "dmarc forged"
    code, text = send_raw(dmr.inst, dmarc_msg(subject, "dm.test"), "carol@sender.test")
    assert code == 550 and "rejected by DMARC policy for dm.test" in text, (code, text)
    assert not [m for m in mailbox(dmr.inst, ALICE, "INBOX") if subject.encode() in m]


def test_opendmarc_fail_under_p_none_is_marked(dmr):
    subject = "dmarc none"
    code, text = send_raw(dmr.inst, dmarc_msg(subject, "dmnone.test"), "carol@sender.test")
    assert code == 250, text
    res = ar_results(stored(dmr.inst, subject), DMARC_AUTHSERV, "dmarc")
    assert res and res[0].startswith("dmarc=fail") and "header.from=dmnone.test" in res[0], res


def test_clamav_quarantines_eicar_into_junk(clam):
    """OnInfected Quarantine (Debian's default): accepted, filed as Junk
    with clamav-milter's fields saying so."""
    inst = clam.insts["Quarantine"]
    subject = "clamav quarantined"
    code, text = send_raw(inst, with_attachment(subject, EICAR), "carol@sender.test")
    assert code == 250, text
    assert not [m for m in mailbox(inst, ALICE, "INBOX") if subject.encode() in m]
    msg = stored(inst, subject, "Junk")
    assert header_values(msg, "X-Virus-Status") == ["Infected (Eicar-Test-Signature.UNOFFICIAL)"], msg
    assert "quarantine" in inst.log("smtpd")


# ---- the macros and the header the milters read (libmilter via pymilter) ----

class MacroMilters:
    """Two macromilter.py milters in a row on one smtpd."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="pr-macromilter-")
        self.daemons, ports = [], []
        try:
            for i in range(2):
                port = harness.free_port()
                self.daemons.append(Daemon(
                    self.dir, f"macromilter{i}",
                    ["/usr/bin/python3", os.path.join(HERE, "macromilter.py"), str(port)],
                    ("127.0.0.1", port)))
                ports.append(port)
            self.inst = start({"milter": ", ".join(f"inet:127.0.0.1:{p}" for p in ports)})
        except BaseException:
            self.stop()
            raise

    def stop(self):
        if hasattr(self, "inst"):
            self.inst.stop_all()
        for d in self.daemons:
            d.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def macros():
    r = subprocess.run(["/usr/bin/python3", "-c", "import Milter"], capture_output=True)
    need(None, "python3-milter", present=r.returncode == 0)
    m = MacroMilters()
    yield m
    m.stop()


def test_macros_as_postfix_sends_them(macros):
    """The macros OpenDKIM, OpenDMARC and clamav-milter read, at the stages
    Postfix gives them (with TLS, the TLS ones at the EHLO after
    STARTTLS); i is the queue id of the Received field."""
    subject = "macros"
    s = smtplib.SMTP("127.0.0.1", macros.inst.port("smtp"), timeout=300)
    try:
        s.ehlo("client.sender.test")
        s.starttls(context=harness.client_tls_context())
        s.ehlo("client.sender.test")
        s.sendmail("carol@sender.test", [ALICE],
                   (f"From: <carol@sender.test>\r\nTo: <{ALICE}>\r\nSubject: {subject}\r\n"
                    "\r\nMacros.\r\n").encode())
        s.quit()
    finally:
        s.close()
    msg = stored(macros.inst, subject)
    qid = re.search(r"with ESMTPS id ([0-9A-Za-z]+)", msg).group(1)
    got = header_values(msg, "X-Macro")
    for want in ["connect j=mail.example.test", "connect {daemon_name}=postroom",
                 "connect v=Postroom", "connect _=unknown [127.0.0.1]",
                 "connect {client_addr}=127.0.0.1", "connect {client_name}=unknown",
                 f"mail i={qid}", "mail {mail_addr}=carol@sender.test",
                 f"rcpt i={qid}", f"rcpt {{rcpt_addr}}={ALICE}", f"data i={qid}",
                 f"eoh i={qid}", f"eom i={qid}"]:
        assert want in got, (want, got)
    assert [g for g in got if g.startswith("helo {tls_version}=TLSv1.")], got
    assert [g for g in got if g.startswith("helo {cipher}=")], got


def test_later_milter_reads_earlier_changes(macros):
    """The second milter reads the X-Macro fields the first one added."""
    subject = "macros chained"
    code, text = send_raw(macros.inst, (f"From: <carol@sender.test>\r\nTo: <{ALICE}>\r\n"
                                        f"Subject: {subject}\r\n\r\nChained.\r\n").encode(),
                          "carol@sender.test")
    assert code == 250, text
    msg = stored(macros.inst, subject)
    seen, added = header_values(msg, "X-Macro-Seen"), header_values(msg, "X-Macro")
    assert seen and seen == added[:len(seen)] and len(added) == 2 * len(seen), msg
