#!/usr/bin/python3
"""Inbound checks benchmark (issue 13): what SPF + DKIM verification +
DMARC cost on the MX listener. One smtpd binary, restarted between
measurements with `inbound_checks = no`, `= yes`, and `= yes` plus a
private rspamd as its milter; beside it, if the peers kit is there and we
are root, the kit's Postfix -> Dovecot LMTP path in a Postfix instance of
our own with two listeners: one plain, one with OpenDKIM (verify mode) as
its milter. Every variant gets the same prepared messages from the same
C load generator (bench/inbound/inload.c), alternating off, on, rspamd,
Postfix, Postfix+OpenDKIM in one run, RUNS runs, medians, ratios, the
1-minute load average before each measurement (HIGH above 1.5 on 2
cores). Then the CPU time of one DKIM verification at 1 KiB and 100 KiB
(bench/inbound/dkim_verify_bench.c).

The messages: 1 KiB, from four sender domains whose SPF records use
include:, mx, a: and ip4/ip6 mechanisms (127.0.0.1 passes through each),
each with a DMARC record (p=reject, quarantine, none) and DKIM keys; 3 of
4 messages signed RSA-2048, 1 of 4 Ed25519 (dkimpy, aligned with From:),
so every check passes and every message lands in INBOX. DNS is a dnslib
server on loopback that knows those zones and answers NXDOMAIN for the
rest (rspamd's blocklist lookups included): nothing leaves the machine.
"Landed" = the message file is in the recipient's maildir (Postroom's 250
already means that; for Postfix we wait for Dovecot's files). CPU =
utime+stime of the server's process trees from /proc: smtpd (+ rspamd's
in the rspamd row, also shown apart), Postfix + Dovecot (+ OpenDKIM);
the kit's Dovecot is shared, so on a machine where others use it its CPU
includes theirs (quiet machine for final figures).

  bench/inbound/inbench.py [--bin build/bin] [--runs 3] [--quick]
                           [--no-peers] [--no-rspamd]
Prints one table; also bench/results/inbound.txt.
"""
import argparse
import base64
import glob
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))
from sbs import (A, HIGH_LOAD, Peers, free_port, loadavg, log,  # noqa: E402
                 tree_cpu, wait_files, wait_port)

import dkim  # noqa: E402
from dnslib import QTYPE, RCODE, RR  # noqa: E402
from dnslib.server import BaseResolver, DNSLogger, DNSServer  # noqa: E402

RCPT = "bench@example.test"
# A kit user of its own: bench/sbs.py empties bench@'s maildir while it runs.
PEER_RCPT = "u099@anchor.test"
PEER_MAILDIR = f"{A}/mail/anchor.test/u099/Maildir"
DOMAINS = ("inc", "mx", "a", "six")


# ---------------------------------------------------------------- DNS
class Zones(BaseResolver):
    def __init__(self):
        self.rr = {}
        self.soa = RR.fromZone("test. 3600 IN SOA ns.test. hostmaster.test. "
                               "1 3600 600 86400 3600")[0]

    def add(self, line):
        rr = RR.fromZone(line)[0]
        self.rr.setdefault((str(rr.rname).lower().rstrip("."), QTYPE[rr.rtype]),
                           []).append(rr)

    def resolve(self, request, handler):
        reply = request.reply()
        name = str(request.q.qname).lower().rstrip(".")
        rrs = self.rr.get((name, QTYPE[request.q.qtype]), [])
        for rr in rrs:
            reply.add_answer(rr)
        if not rrs and not any(k[0] == name for k in self.rr):
            reply.header.rcode = RCODE.NXDOMAIN
        if not rrs:
            reply.add_auth(self.soa)   # negative answers may be cached
        return reply


def txt(name, data):
    parts = " ".join(f'"{data[i:i + 250]}"' for i in range(0, len(data), 250))
    return f"{name}. 3600 IN TXT {parts}"


def keys():
    pem = subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                          "rsa_keygen_bits:2048"], capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubout", "-outform", "DER"], input=pem,
                         capture_output=True, check=True).stdout
    import nacl.signing
    sk = nacl.signing.SigningKey.generate()
    return {"rsa": (pem, base64.b64encode(der).decode()),
            "ed": (base64.b64encode(bytes(sk)),
                   base64.b64encode(bytes(sk.verify_key)).decode())}


def zones(k):
    z = Zones()
    for line in (
            '_spf.bench.test. 3600 IN TXT "v=spf1 ip4:192.0.2.0/24 a:relay.bench.test -all"',
            "relay.bench.test. 3600 IN A 127.0.0.1",
            'inc.bench.test. 3600 IN TXT "v=spf1 include:_spf.bench.test -all"',
            'mx.bench.test. 3600 IN TXT "v=spf1 mx -all"',
            "mx.bench.test. 3600 IN MX 10 in.mx.bench.test.",
            "in.mx.bench.test. 3600 IN A 127.0.0.1",
            'a.bench.test. 3600 IN TXT "v=spf1 ip4:198.51.100.0/24 a:out.a.bench.test -all"',
            "out.a.bench.test. 3600 IN A 127.0.0.1",
            'six.bench.test. 3600 IN TXT "v=spf1 ip6:2001:db8::/32 include:_spf.bench.test ~all"',
            '_dmarc.inc.bench.test. 3600 IN TXT "v=DMARC1; p=reject"',
            '_dmarc.mx.bench.test. 3600 IN TXT "v=DMARC1; p=quarantine; adkim=s"',
            '_dmarc.a.bench.test. 3600 IN TXT "v=DMARC1; p=none"',
            '_dmarc.bench.test. 3600 IN TXT "v=DMARC1; p=reject; sp=reject"'):
        z.add(line)
    for d in DOMAINS:
        z.add(txt(f"rsa._domainkey.{d}.bench.test", "v=DKIM1; k=rsa; p=" + k["rsa"][1]))
        z.add(txt(f"ed._domainkey.{d}.bench.test", "v=DKIM1; k=ed25519; p=" + k["ed"][1]))
    return z


def message_set(path, k, size, rcpt, count=16):
    """count signed messages of about size bytes, as inload reads them."""
    with open(path, "wb") as f:
        for i in range(count):
            d = f"{DOMAINS[i % len(DOMAINS)]}.bench.test"
            which = "ed" if i % 4 == 3 else "rsa"
            head = (f"From: Sender {i} <s{i}@{d}>\r\nTo: <{rcpt}>\r\n"
                    f"Subject: inbound bench {i}\r\n"
                    f"Date: Tue, 08 Dec 2026 01:00:00 +0000\r\n"
                    f"Message-ID: <{i}.bench@{d}>\r\n\r\n")
            line = "The quick brown fox jumps over the lazy dog, again and again.\r\n"
            body = (line * (size // len(line) + 1))[:max(size - len(head) - 500, 64)]
            body = body[:body.rfind("\r\n") + 2]
            msg = (head + body).encode()
            sig = dkim.sign(msg, which.encode(), d.encode(), k[which][0],
                            signature_algorithm=b"ed25519-sha256" if which == "ed"
                            else b"rsa-sha256",
                            include_headers=[b"from", b"to", b"subject", b"date",
                                             b"message-id"])
            raw = sig.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + msg
            data = raw.replace(b"\r\n.", b"\r\n..") + b".\r\n"
            f.write(f"s{i}@{d} {len(data)}\n".encode() + data)


def wait_unix(path, proc, secs):
    """Waits until something accepts on the unix socket path."""
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited {proc.returncode}")
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(path)
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listens on {path}")


# ---------------------------------------------------------------- Postroom
class Postroom:
    """One data directory; smtpd restarted with the variant's config."""

    def __init__(self, bindir, tmp, dnsport, milter):
        self.bin, self.dir = bindir, f"{tmp}/postroom"
        os.makedirs(self.dir)
        self.port = free_port()
        self.p = None
        base = (f"hostname = mail.example.test\ndata_dir = {self.dir}/data\n"
                f"smtp_listen = 127.0.0.1:{self.port}\nsubmission_listen =\n"
                f"smtps_listen =\nmax_message_size = 50M\nmax_connections = 10000\n"
                f"max_connections_per_ip = 10000\nmax_unauth_connections_per_ip = 10000\n"
                f"dns_servers = 127.0.0.1:{dnsport}\n")
        self.confs = {
            "off": base + "inbound_checks = no\n",
            "on": base + "inbound_checks = yes\n",
            "rspamd": base + f"inbound_checks = yes\nmilter = unix:{milter}\n"
                      "milter_timeout = 120s\n",
        }
        for name, text in self.confs.items():
            with open(f"{self.dir}/{name}.conf", "w") as f:
                f.write(text)
        ctl = [f"{bindir}/mailctl", "-c", f"{self.dir}/on.conf"]
        subprocess.run(ctl + ["domain", "add", "example.test"], check=True,
                       capture_output=True)
        subprocess.run(ctl + ["user", "add", RCPT, "--password-stdin"],
                       input=b"bench-password-1\n", check=True, capture_output=True)
        self.mail = f"{self.dir}/data/mail/example.test/bench"

    def dirs(self):
        return [d for m in glob.glob(f"{self.mail}/*/") for d in (f"{m}new", f"{m}cur")]

    def start(self, variant):
        self.p = subprocess.Popen([f"{self.bin}/smtpd", "-c", f"{self.dir}/{variant}.conf"],
                                  stdout=subprocess.DEVNULL,
                                  stderr=open(f"{self.dir}/smtpd.log", "ab"),
                                  start_new_session=True)
        wait_port("127.0.0.1", self.port)

    def stop(self):
        if self.p and self.p.poll() is None:
            self.p.terminate()
            self.p.wait(60)
        self.p = None


class Rspamd:
    """rspamd in milter mode (proxy worker, self_scan), private config in
    tmp, its DNS on our loopback server. Both milters of this benchmark
    listen on unix sockets, as local milters usually do (and so neither
    MTA's milter traffic meets Nagle's algorithm on loopback TCP)."""

    def __init__(self, tmp, dnsport):
        self.dir = f"{tmp}/rspamd"
        local = f"{self.dir}/local"
        for d in ("local/local.d", "local/override.d", "db", "run", "log"):
            os.makedirs(f"{self.dir}/{d}")
        self.sock = f"{self.dir}/run/milter.sock"
        files = {
            "override.d/worker-proxy.inc": (
                f'bind_socket = "{self.sock} mode=0666";\nmilter = yes;\n'
                "timeout = 120s;\nself_scan = yes;\ncount = 1;\n"
                "upstream \"local\" { default = yes; self_scan = yes; }\n"),
            "override.d/worker-normal.inc": 'count = -1; bind_socket = "127.0.0.1:1";\n',
            "override.d/worker-controller.inc": 'count = -1; bind_socket = "127.0.0.1:1";\n',
            "override.d/logging.inc": 'type = "console"; level = "error";\n',
            "local.d/options.inc": (f'dns {{ nameserver = ["127.0.0.1:{dnsport}"]; '
                                    'timeout = 2s; retransmits = 2; }\n'),
        }
        for name, text in files.items():
            with open(f"{local}/{name}", "w") as f:
                f.write(text)
        self.p = subprocess.Popen(
            [shutil.which("rspamd") or "/usr/bin/rspamd", "-f", "-i", "-c",
             "/etc/rspamd/rspamd.conf", f"--var=LOCAL_CONFDIR={local}",
             f"--var=DBDIR={self.dir}/db", f"--var=RUNDIR={self.dir}/run",
             f"--var=LOGDIR={self.dir}/log"],
            cwd=self.dir, stdout=open(f"{self.dir}/out", "w"), stderr=subprocess.STDOUT,
            start_new_session=True)
        try:
            wait_unix(self.sock, self.p, 300)   # it compiles its rules first
        except RuntimeError as e:
            raise RuntimeError(f"rspamd: {e}: " + open(f"{self.dir}/out").read()[-500:])

    def stop(self):
        try:
            os.killpg(self.p.pid, signal.SIGTERM)
            self.p.wait(60)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.p.pid, signal.SIGKILL)
            self.p.wait()


# ---------------------------------------------------------------- peers
class OpenDKIM:
    """OpenDKIM in verify mode as a milter. Its keys come from its
    TestDNSData table, not from DNS: its resolver (libunbound) can only be
    pointed at a loopback port through ResolverConfiguration, which it
    re-parses for every message with a non-reentrant parser, and that
    crashes it at 10 sessions. Postroom answers from its DNS cache after
    the warm-up, so both look keys up locally."""

    def __init__(self, tmp, z):
        self.dir = d = f"{tmp}/opendkim"
        os.makedirs(d)
        self.sock = f"{d}/milter.sock"
        with open(f"{d}/keys", "w") as f:
            for (name, qtype), rrs in z.rr.items():
                if qtype == "TXT" and "._domainkey." in name:
                    data = b"".join(rrs[0].rdata.data).decode()
                    f.write(f"{name} {data.replace(' ', '')}\n")
        with open(f"{d}/opendkim.conf", "w") as f:
            f.write(f"Mode v\nSocket local:{self.sock}\nUMask 000\nSyslog no\n"
                    f"PidFile {d}/pid\nAuthservID mail.anchor.test\n"
                    f"TestDNSData file:{d}/keys\nAlwaysAddARHeader yes\n")
        self.p = subprocess.Popen(["opendkim", "-f", "-x", f"{d}/opendkim.conf"],
                                  stdout=open(f"{d}/out", "w"), stderr=subprocess.STDOUT,
                                  start_new_session=True)
        wait_unix(self.sock, self.p, 60)

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            self.p.wait(60)


class PostfixIn:
    """A Postfix instance of ours (queue in tmp) delivering like the kit's
    (virtual domain anchor.test -> Dovecot LMTP 127.0.0.1:10024), with two
    smtpd listeners: `off` plain, `on` with OpenDKIM as its milter."""

    def __init__(self, tmp, milter):
        self.d = d = f"{tmp}/postfix-in"
        self.ports = {"off": free_port(), "on": free_port()}
        for s in ("etc", "spool", "data", "log"):
            os.makedirs(f"{d}/{s}", exist_ok=True)
        main = open(f"{A}/postfix/etc/main.cf").read()
        for key, val in (("queue_directory", f"{d}/spool"), ("data_directory", f"{d}/data"),
                         ("maillog_file", f"{d}/log/postfix.log"),
                         ("maillog_file_prefixes", tmp)):
            main = "\n".join(f"{key} = {val}" if ln.startswith(key + " ") else ln
                             for ln in main.split("\n"))
        main += "\nmilter_default_action = tempfail\nmilter_protocol = 6\n"
        open(f"{d}/etc/main.cf", "w").write(main)
        master = open(f"{A}/postfix/etc/master.cf").read().split("\n")
        out = []
        for ln in master:
            if ln.startswith("127.0.0.1:10025 "):
                rest = ln[len("127.0.0.1:10025 "):]
                out.append(f"127.0.0.1:{self.ports['off']} {rest}")
                out.append(f"127.0.0.1:{self.ports['on']} {rest}")
                out.append(f"  -o smtpd_milters=unix:{milter}")
            else:
                out.append(ln)
        open(f"{d}/etc/master.cf", "w").write("\n".join(out))
        subprocess.run(["postfix", "-c", f"{d}/etc", "check"], capture_output=True)
        subprocess.run(["chown", "postfix", f"{d}/data", f"{d}/log"], check=True)
        subprocess.run(["postfix", "-c", f"{d}/etc", "start"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for p in self.ports.values():
            wait_port("127.0.0.1", p)

    def pid(self):
        return int(open(f"{self.d}/spool/pid/master.pid").read().strip())

    def close(self):
        subprocess.run(["postfix", "-c", f"{self.d}/etc", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# ---------------------------------------------------------------- measuring
def generate(load, port, n, sessions, msgset, rcpt):
    r = subprocess.run([load, "-p", str(port), "-n", str(n), "-c", str(sessions),
                        "-m", msgset, "-t", rcpt],
                       capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        log(f"  generator rc={r.returncode}: {(r.stdout + r.stderr).strip()[:300]}")


def pr_measure(cfg, pr, variant, sessions, n, rspamd):
    """Starts smtpd as variant, warms it up (DNS cache, page cache), then
    sends n messages; returns rates and CPU per 1,000."""
    pr.start(variant)
    try:
        generate(cfg.load, pr.port, cfg.warm, sessions, cfg.set_pr, RCPT)
        old = names(pr.dirs())
        before = len(old)
        roots = [pr.p.pid]
        c0, r0 = tree_cpu(roots), (tree_cpu([rspamd.p.pid]) if rspamd else 0)
        t0 = time.monotonic()
        generate(cfg.load, pr.port, n, sessions, cfg.set_pr, RCPT)
        got = wait_landed(pr.dirs(), before + n) - before
        el = time.monotonic() - t0
        cpu = tree_cpu(roots) - c0
        rcpu = (tree_cpu([rspamd.p.pid]) - r0) if rspamd else None
    finally:
        pr.stop()
    sample(pr.dirs(), {"off": [], "on": AR_PASS, "rspamd": AR_PASS}[variant],
           [] if variant != "off" else ["Authentication-Results: mail.example.test"], old)
    return dict(land=got / el, cpu=(cpu + (rcpu or 0)) * 1000 / n,
                smtpd=cpu * 1000 / n, milter=rcpu * 1000 / n if rcpu is not None else None,
                got=got)


def wait_landed(dirs, want):
    """Waits until want files are there or none came for 30 s (the
    shared kit's Dovecot may be down: someone else restarting it)."""
    last, since = -1, time.monotonic()
    while True:
        n = wait_files(dirs, want, 1)
        if n >= want:
            return n
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since > 30:
            return n


AR_PASS = ["Authentication-Results: mail.example.test", "spf=pass", "dkim=pass",
           "dmarc=pass"]


def names(dirs):
    return {e.path for d in dirs if os.path.isdir(d) for e in os.scandir(d)}


def sample(dirs, want, unwanted, old=frozenset()):
    """Checks one message landed by this measurement (not in old): the
    variant did what it claims."""
    new = names(dirs) - old
    if not new:
        log("  WARNING: no message landed")
        return
    path = min(new)
    text = open(path, errors="replace").read().split("\r\n\r\n", 1)[0]
    bad = [w for w in want if w not in text] + [u for u in unwanted if u in text]
    if bad:
        log(f"  WARNING: a landed message is not as expected ({bad}): {path}")


def pf_measure(cfg, pf, peers, od, variant, sessions, n):
    dmd = PEER_MAILDIR
    ddirs = [f"{dmd}/new", f"{dmd}/cur"]
    generate(cfg.load, pf.ports[variant], cfg.warm, sessions, cfg.set_pf, PEER_RCPT)
    wait_landed(ddirs, cfg.warm)
    # Nothing left over from an earlier measurement lands in this one.
    subprocess.run(["postsuper", "-c", f"{pf.d}/etc", "-d", "ALL"], capture_output=True)
    shutil.rmtree(dmd, ignore_errors=True)
    os.sync()
    roots = [pf.pid(), peers.dv_pid()]
    c0, o0 = tree_cpu(roots), tree_cpu([od.p.pid])
    cpu_ok = True
    t0 = time.monotonic()
    generate(cfg.load, pf.ports[variant], n, sessions, cfg.set_pf, PEER_RCPT)
    got = wait_landed(ddirs, n)
    el = time.monotonic() - t0
    cpu, ocpu = tree_cpu(roots) - c0, tree_cpu([od.p.pid]) - o0
    if roots != [pf.pid(), peers.dv_pid()] or cpu < 0:
        log("  the kit's Dovecot was restarted meanwhile (someone else's run?): "
            "no CPU figure")
        cpu_ok = False
    sample(ddirs, ["dkim=pass"] if variant == "on" else [],
           ["Authentication-Results"] if variant == "off" else [])
    if variant == "off":
        ocpu = 0.0   # idle; not this variant's
    return dict(land=got / el, cpu=(cpu + ocpu) * 1000 / n if cpu_ok else None,
                milter=ocpu * 1000 / n if variant == "on" else None, got=got)


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x):
    if x is None:
        return "-"
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    if x >= 0.1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def ratio(a, b, better):
    if not a or not b:
        return "-"
    return f"{(b / a if better == 'higher' else a / b):.2f}x"


def dkim_cost(cfg):
    """Median over cfg.runs of dkim_verify_bench's CPU us per verification."""
    out = {}
    for size, n in ((1024, 2000 if not cfg.quick else 300), (102400, 400 if not cfg.quick else 60)):
        for _ in range(cfg.runs):
            r = subprocess.run([cfg.dkbench, str(size), str(n)], capture_output=True,
                               text=True, check=True)
            for ln in r.stdout.splitlines():
                f = dict(x.split("=", 1) for x in ln.split()[1:])
                out.setdefault((f["alg"], size), []).append(float(f["cpu_us_per_verify"]))
    return {k: statistics.median(v) for k, v in out.items()}


def build(cfg):
    out = os.path.join(ROOT, "build", "bench-inbound")
    os.makedirs(out, exist_ok=True)
    cfg.load = f"{out}/inload"
    subprocess.run(["cc", "-O2", "-pthread", "-o", cfg.load, f"{HERE}/inload.c"], check=True)
    cfg.dkbench = f"{out}/dkim_verify_bench"
    lib = os.path.join(os.path.dirname(os.path.abspath(cfg.bin)), "lib", "libcommon.a")
    subprocess.run(["cc", "-O2", "-std=c11", "-D_GNU_SOURCE", f"-I{ROOT}/common", "-o",
                    cfg.dkbench, f"{HERE}/dkim_verify_bench.c", lib, "-lssl", "-lcrypto",
                    "-lsodium", "-lz"], check=True)


def peers_ok(cfg):
    if cfg.no_peers:
        return "off (--no-peers)"
    if os.geteuid() != 0:
        return "needs root"
    if not os.path.exists(f"{A}/bin/dovecot_restart.sh"):
        return f"no peers kit in {A}"
    if not shutil.which("opendkim") or not shutil.which("postfix"):
        return "opendkim or postfix not installed"
    return None


def run_all(cfg, tmp, rows):
    k = keys()
    z = zones(k)
    dnsport = free_port()
    dns = DNSServer(z, port=dnsport, address="127.0.0.1",
                    logger=DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data",
                                     prefix=False))
    dns.start_thread()
    cfg.set_pr = f"{tmp}/postroom.set"
    cfg.set_pf = f"{tmp}/peer.set"
    message_set(cfg.set_pr, k, 1024, RCPT)
    message_set(cfg.set_pf, k, 1024, PEER_RCPT)
    rspamd = pr = od = pf = peers = None
    try:
        if not cfg.no_rspamd and shutil.which("rspamd"):
            log("starting rspamd")
            rspamd = Rspamd(tmp, dnsport)
        pr = Postroom(cfg.bin, tmp, dnsport, rspamd.sock if rspamd else "/nonexistent")
        why = peers_ok(cfg)
        if why is None:
            peers = Peers()
            od = OpenDKIM(tmp, z)
            pf = PostfixIn(tmp, od.sock)
        else:
            log(f"peers skipped: {why}")
        cfg.peer_note = why
        for sessions, n in cfg.loads:
            res = {v: [] for v in ("off", "on", "rspamd", "pf_off", "pf_on")}
            la = {v: [] for v in res}
            for run in range(cfg.runs):
                log(f"{sessions} session(s) x {n} messages, run {run + 1}/{cfg.runs}")
                steps = [("off", lambda: pr_measure(cfg, pr, "off", sessions, n, None)),
                         ("on", lambda: pr_measure(cfg, pr, "on", sessions, n, None))]
                if rspamd:
                    steps.append(("rspamd", lambda: pr_measure(cfg, pr, "rspamd", sessions,
                                                               n, rspamd)))
                if pf:
                    steps += [("pf_off", lambda: pf_measure(cfg, pf, peers, od, "off",
                                                            sessions, n)),
                              ("pf_on", lambda: pf_measure(cfg, pf, peers, od, "on",
                                                           sessions, n))]
                for v, fn in steps:
                    la[v].append(loadavg())
                    r = fn()
                    res[v].append(r)
                    if r["got"] < n:
                        log(f"  WARNING {v}: {r['got']} of {n} landed")
            add_rows(rows, sessions, n, res, la)
    finally:
        for x in (pr, rspamd, od):
            if x:
                x.stop()
        if pf:
            pf.close()
            shutil.rmtree(PEER_MAILDIR, ignore_errors=True)
        if peers:
            peers.close()
        dns.stop()


def col(rs, key):
    return med([r.get(key) for r in rs]) if rs else None


def lav(xs):
    s = " ".join(f"{x:.1f}" for x in xs)
    return s + (" HIGH" if any(x > HIGH_LOAD for x in xs) else "")


def add_rows(rows, sessions, n, res, la):
    what = f"1 KiB, {sessions} session{'s' if sessions > 1 else ''}, {n} msgs"
    loads = " / ".join(lav(la[v]) for v in ("off", "on", "rspamd") if la[v])
    for key, unit, better in (("land", "msgs/s landed", "higher"),
                              ("cpu", "server CPU-s per 1,000", "lower")):
        off, on, rs = col(res["off"], key), col(res["on"], key), col(res["rspamd"], key)
        extra = ""
        if key == "cpu" and res["rspamd"]:
            extra = f" (rspamd {fmt(col(res['rspamd'], 'milter'))})"
        rows.append((f"Postroom {what}", unit, fmt(off), fmt(on), ratio(off, on, better),
                     fmt(rs) + extra if res["rspamd"] else "-",
                     ratio(off, rs, better) if res["rspamd"] else "-", loads))
    if res["pf_off"]:
        loads = " / ".join(lav(la[v]) for v in ("pf_off", "pf_on"))
        for key, unit, better in (("land", "msgs/s landed", "higher"),
                                  ("cpu", "server CPU-s per 1,000", "lower")):
            off, on = col(res["pf_off"], key), col(res["pf_on"], key)
            extra = ""
            if key == "cpu":
                extra = f" (OpenDKIM {fmt(col(res['pf_on'], 'milter'))})"
            rows.append((f"Postfix+Dovecot {what}", unit, fmt(off), fmt(on) + extra,
                         ratio(off, on, better), "-", "-", loads))


def table(cfg, rows, dk, started):
    head = (f"Inbound checks, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}, "
            f"{os.cpu_count()} CPU, medians of {cfg.runs} run(s) alternating "
            f"off / on / on+rspamd / Postfix / Postfix+OpenDKIM"
            f"{' (--quick: small counts)' if cfg.quick else ''}; ratio = on relative to "
            f"off (< 1 = the checks cost that much); HIGH = 1-min load average above "
            f"{HIGH_LOAD} before a run.\n"
            "Postroom: the same smtpd, inbound_checks = no / yes (SPF + DKIM + DMARC) / "
            "yes + rspamd milter. Postfix+Dovecot: the kit's delivery path, no milter / "
            "OpenDKIM milter (DKIM only: no SPF or DMARC)"
            + (f"; not measured: {cfg.peer_note}" if cfg.peer_note else "") + ".")
    out = [head, "",
           "| load | unit | checks off (Postfix: no milter) | checks on (Postfix: OpenDKIM) "
           "| on/off | on + rspamd | rspamd/off | loadavg before runs (off / on / rspamd) |",
           "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    for (alg, size), us in sorted(dk.items(), key=lambda x: (x[0][1], x[0][0])):
        out.append(f"| DKIM verify {alg}, {size // 1024} KiB message "
                   f"(dkim_verify_bench) | CPU us per verification | - | {fmt(us)} "
                   f"| - | - | - | - |")
    pr_land = [r for r in rows if r[0].startswith("Postroom") and r[1] == "msgs/s landed"]
    for r in pr_land:
        if r[4] != "-":
            cost = (1 - float(r[4].rstrip("x"))) * 100
            out.append("")
            what = (f"cost {cost:.0f}% of inbound throughput" if cost >= 0 else
                    "cost nothing measurable (on ran faster than off: noise)")
            out.append(f"{r[0]}: the built-in checks {what} (goal: under 20%).")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    ap.add_argument("--runs", type=int)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--no-rspamd", action="store_true")
    cfg = ap.parse_args()
    cfg.runs = cfg.runs or (1 if cfg.quick else 3)
    cfg.loads = [(1, 100), (10, 200)] if cfg.quick else [(1, 500), (10, 1000)]
    cfg.warm = 20
    cfg.peer_note = None
    build(cfg)
    started = time.time()
    tmp = tempfile.mkdtemp(prefix="postroom-inbench-")
    os.chmod(tmp, 0o755)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rows = []
    try:
        run_all(cfg, tmp, rows)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log("DKIM verification cost")
    dk = dkim_cost(cfg)
    text = table(cfg, rows, dk, started)
    res = os.path.join(ROOT, "bench", "results")
    os.makedirs(res, exist_ok=True)
    with open(f"{res}/inbound.txt", "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
