"""Inbound checks load: starts a test DNS server (dnslib, loopback) with an
SPF record, a DKIM key and a DMARC p=reject record for the sender domain,
an smtpd from BIN on the MX listener with dns_servers pointed at it, and
sends N DKIM-signed messages (dkimpy, RSA-2048) of SIZE bytes over
SESSIONS parallel SMTP sessions. Prints msgs/s and smtpd's CPU seconds per
1,000 messages (utime+stime from /proc). With RSPAMD=1 in the
environment a private rspamd (Debian's package, its proxy worker in milter
mode, self-scanning, started as tests/proto/milter/test_rspamd.py does) is
smtpd's milter; its CPU is printed apart (rspamd_cpu_s_per_1000).
    load.py BIN N SIZE SESSIONS"""
import base64
import os
import signal
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time

import dkim
from dnslib import RR, QTYPE, RCODE
from dnslib.server import BaseResolver, DNSLogger, DNSServer


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Zones(BaseResolver):
    def __init__(self):
        self.rr = {}
        self.soa = RR.fromZone("test. 300 IN SOA ns.test. hostmaster.test. "
                               "1 3600 600 86400 300")[0]

    def add(self, line):
        rr = RR.fromZone(line)[0]
        self.rr.setdefault((str(rr.rname).lower().rstrip("."), QTYPE[rr.rtype]), []).append(rr)

    def resolve(self, request, handler):
        reply = request.reply()
        name = str(request.q.qname).lower().rstrip(".")
        rrs = self.rr.get((name, QTYPE[request.q.qtype]), [])
        for rr in rrs:
            reply.add_answer(rr)
        if not rrs and not any(k[0] == name for k in self.rr):
            reply.header.rcode = RCODE.NXDOMAIN
        if not rrs:
            # As a real server does: the SOA that says how long the
            # negative answer may be cached (RFC 2308).
            reply.add_auth(self.soa)
        return reply


class Rspamd:
    """rspamd in milter mode on a free loopback port, config in a scratch
    dir, its DNS pointed at a dead loopback port (nothing leaves)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="postroom-inbench-rspamd-")
        local = os.path.join(self.dir, "local")
        for d in ("local/local.d", "local/override.d", "db", "run", "log"):
            os.makedirs(os.path.join(self.dir, d))
        self.port = free_port()
        files = {
            "override.d/worker-proxy.inc": (
                f'bind_socket = "127.0.0.1:{self.port}";\nmilter = yes;\n'
                "timeout = 120s;\nself_scan = yes;\ncount = 1;\n"
                "upstream \"local\" { default = yes; self_scan = yes; }\n"),
            "override.d/worker-normal.inc": 'count = -1; bind_socket = "127.0.0.1:1";\n',
            "override.d/worker-controller.inc": 'count = -1; bind_socket = "127.0.0.1:1";\n',
            "override.d/logging.inc": 'type = "console"; level = "error";\n',
            "local.d/options.inc": (
                f'dns {{ nameserver = ["127.0.0.1:{free_port()}"]; timeout = 1s; '
                'retransmits = 1; }\n'),
        }
        for name, text in files.items():
            with open(os.path.join(local, name), "w") as f:
                f.write(text)
        self.p = subprocess.Popen(
            [shutil.which("rspamd") or "/usr/bin/rspamd", "-f", "-i", "-c",
             "/etc/rspamd/rspamd.conf", f"--var=LOCAL_CONFDIR={local}",
             f"--var=DBDIR={self.dir}/db", f"--var=RUNDIR={self.dir}/run",
             f"--var=LOGDIR={self.dir}/log"],
            cwd=self.dir, stdout=open(os.path.join(self.dir, "out"), "w"),
            stderr=subprocess.STDOUT, start_new_session=True)
        while True:
            if self.p.poll() is not None:
                raise RuntimeError("rspamd exited")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=5).close()
                return
            except OSError:
                time.sleep(0.2)

    def cpu(self):
        """CPU seconds of rspamd's process group (main and workers)."""
        total = 0.0
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                if os.getpgid(int(pid)) == self.p.pid:
                    total += cpu(pid)
            except (OSError, IndexError):
                pass
        return total

    def stop(self):
        try:
            os.killpg(self.p.pid, signal.SIGTERM)
            self.p.wait(timeout=60)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


def cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def main():
    bindir, n, size, sessions = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    d = tempfile.mkdtemp(prefix="postroom-inbench-")
    pem = subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                          "rsa_keygen_bits:2048"], capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubout", "-outform", "DER"], input=pem,
                         capture_output=True, check=True).stdout
    pub = base64.b64encode(der).decode()
    z = Zones()
    z.add('bench.test. 60 IN TXT "v=spf1 ip4:127.0.0.1 -all"')
    z.add('_dmarc.bench.test. 60 IN TXT "v=DMARC1; p=reject"')
    data = "v=DKIM1; k=rsa; p=" + pub
    parts = " ".join(f'"{data[i:i + 250]}"' for i in range(0, len(data), 250))
    z.add(f"sel._domainkey.bench.test. 60 IN TXT {parts}")
    dport = free_port()
    srv = DNSServer(z, port=dport, address="127.0.0.1",
                    logger=DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data",
                                     prefix=False))
    srv.start_thread()
    port = free_port()
    rspamd = Rspamd() if os.environ.get("RSPAMD") == "1" else None
    conf = os.path.join(d, "postroom.conf")
    with open(conf, "w") as f:
        f.write(f"hostname = mail.example.test\ndata_dir = {d}/data\n"
                f"smtp_listen = 127.0.0.1:{port}\nsubmission_listen =\nsmtps_listen =\n"
                f"max_message_size = 50M\nmax_connections_per_ip = 1000\n"
                f"max_unauth_connections_per_ip = 1000\n"
                f"dns_servers = 127.0.0.1:{dport}\n")
        if rspamd:
            f.write(f"milter = inet:127.0.0.1:{rspamd.port}\n")
    subprocess.run([f"{bindir}/mailctl", "-c", conf, "domain", "add", "example.test"], check=True)
    subprocess.run([f"{bindir}/mailctl", "-c", conf, "user", "add", "bench@example.test",
                    "--password-stdin"], input=b"bench-password\n", check=True,
                   capture_output=True)
    p = subprocess.Popen([f"{bindir}/smtpd", "-c", conf], stderr=open(f"{d}/smtpd.log", "w"))
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            break
        except OSError:
            time.sleep(0.1)
    line = ("x" * 70 + "\r\n")
    body = (line * (size // len(line) + 1))[:max(size - 200, 10)]
    msg = (b"From: <a@bench.test>\r\nTo: <bench@example.test>\r\nSubject: bench\r\n"
           b"Message-ID: <1@bench.test>\r\n\r\n" + body.encode() + b"\r\n")
    msg = dkim.sign(msg, b"sel", b"bench.test", pem,
                    include_headers=[b"from", b"to", b"subject", b"message-id"]
                    ).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + msg
    per = [n // sessions + (1 if i < n % sessions else 0) for i in range(sessions)]

    def worker(k):
        with smtplib.SMTP("127.0.0.1", port, local_hostname="client.bench.test",
                          timeout=300) as c:
            for _ in range(k):
                c.sendmail("a@bench.test", ["bench@example.test"], msg)

    c0 = cpu(p.pid)
    r0 = rspamd.cpu() if rspamd else 0
    t0 = time.monotonic()
    ts = [threading.Thread(target=worker, args=(k,)) for k in per]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    dt = time.monotonic() - t0
    c1 = cpu(p.pid)
    extra = ""
    if rspamd:
        extra = f" rspamd_cpu_s_per_1000={(rspamd.cpu() - r0) * 1000 / n:.2f}"
        rspamd.stop()
    p.terminate()
    p.wait()
    srv.stop()
    subprocess.run(["rm", "-rf", d])
    print(f"msgs={n} size={size} sessions={sessions} msgs_per_s={n / dt:.1f} "
          f"cpu_s_per_1000={(c1 - c0) * 1000 / n:.2f}{extra}")


main()
