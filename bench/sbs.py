#!/usr/bin/python3
"""Side-by-side benchmark: the same load aimed at Postroom and at the peers
(Postfix 3.7 -> Dovecot LMTP, Dovecot 2.3) from the kit in /tmp/anchor,
alternating A B A B in one run, RUNS runs, medians and ratios. The 1-minute
load average is read from /proc/loadavg before every measurement; a
measurement taken with it above HIGH_LOAD (1.5 on 2 cores) is marked.

  bench/sbs.py [--bin build/bin] [--quick] [--only smtp,pop3,imap,login,out]
              [--io-load] [--smtp-loads 1k10,100k10,1k1,1k1io]

Called by bench/run_all.sh (`make bench`). Needs root (drop_caches, the
kit's Postfix and Dovecot, smtp-sink on 127.0.0.2). Every process it starts
is stopped on exit; the kit's Postfix/Dovecot are stopped only if this run
started them. Loopback only. Output: the table on stdout and in
bench/results/sbs.txt, raw samples in bench/results/sbs.json.
"""
import argparse
import asyncio
import base64
import json
import concurrent.futures
import os
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
A = "/tmp/anchor"
HIGH_LOAD = 1.5
PW = "bench-password-1"          # Postroom users (Argon2id)
DPW = "pw"                       # the kit's Dovecot users (plaintext passdb)
CLK = os.sysconf("SC_CLK_TCK")


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def loadavg():
    return float(open("/proc/loadavg").read().split()[0])


def free_port(kind=socket.SOCK_STREAM, host="127.0.0.1"):
    s = socket.socket(socket.AF_INET, kind)
    s.bind((host, 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(host, port, secs=60):
    end = time.time() + secs
    while time.time() < end:
        try:
            socket.create_connection((host, port), timeout=5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {host}:{port}")


def tree_cpu(roots):
    """CPU seconds (user+sys, children reaped included) of the process trees
    rooted at the given pids: Postfix and Dovecot run many processes."""
    info, kids = {}, {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            s = open(f"/proc/{d}/stat").read()
        except OSError:
            continue
        f = s[s.rindex(")") + 2:].split()
        info[int(d)] = sum(int(x) for x in f[11:15])
        kids.setdefault(int(f[1]), []).append(int(d))
    tot, todo, seen = 0, [int(p) for p in roots if p], set()
    while todo:
        p = todo.pop()
        if p in seen or p not in info:
            continue
        seen.add(p)
        tot += info[p]
        todo.extend(kids.get(p, []))
    return tot / CLK


def nfiles(*dirs):
    n = 0
    for d in dirs:
        try:
            n += sum(1 for e in os.scandir(d) if not e.name.startswith("."))
        except FileNotFoundError:
            pass
    return n


def wait_files(dirs, want, secs):
    end = time.time() + secs
    while True:
        n = nfiles(*dirs)
        if n >= want or time.time() > end:
            return n
        time.sleep(0.02)


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


# ---------------------------------------------------------------- results
class Table:
    def __init__(self, runs):
        self.rows, self.runs = [], runs

    def add(self, section, load, unit, better, peer, pr, pe, la_pr, la_pe):
        self.rows.append(dict(section=section, load=load, unit=unit, better=better,
                              peer=peer, postroom=pr, peers=pe, load_pr=la_pr,
                              load_peer=la_pe))

    @staticmethod
    def med(xs):
        xs = [x for x in xs if x is not None]
        return statistics.median(xs) if xs else None

    @staticmethod
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

    def text(self):
        out = ["| load | unit | Postroom | peer | ratio | loadavg before runs (Postroom / peer) |",
               "| --- | --- | --- | --- | --- | --- |"]
        for r in self.rows:
            a, b = self.med(r["postroom"]), self.med(r["peers"])
            ratio = "-"
            if a and b:
                q = a / b if r["better"] == "higher" else b / a
                ratio = f"{q:.2f}x"
            las = r["load_pr"] + r["load_peer"]
            high = " HIGH" if any(x > HIGH_LOAD for x in las) else ""
            la = " ".join(f"{x:.1f}" for x in r["load_pr"]) + " / " + \
                " ".join(f"{x:.1f}" for x in r["load_peer"])
            out.append(f"| {r['load']} | {r['unit']} | {self.fmt(a)} | {r['peer']} {self.fmt(b)} | "
                       f"{ratio} | {la}{high} |")
        return "\n".join(out)


def alternate(runs, a, b):
    """Runs a() and b() alternately; returns (a results, b results, load
    averages before each a, before each b)."""
    ra, rb, la, lb = [], [], [], []
    for _ in range(runs):
        la.append(loadavg())
        ra.append(a())
        lb.append(loadavg())
        rb.append(b())
    return ra, rb, la, lb


def col(results, key):
    return [r.get(key) if r else None for r in results]


# ---------------------------------------------------------------- servers
class Postroom:
    """A fresh Postroom instance in a temporary directory."""

    def __init__(self, bindir):
        self.bin = bindir
        self.dir = tempfile.mkdtemp(prefix="postroom-sbs-")
        self.procs = {}
        self.ports = {k: free_port() for k in
                      ("smtp", "sub", "imap", "imaps", "pop3", "pop3s")}
        self.dnsport = free_port(socket.SOCK_DGRAM)
        self.sinkport = free_port(host="127.0.0.2")
        self.conf = os.path.join(self.dir, "postroom.conf")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", f"{self.dir}/key.pem", "-out", f"{self.dir}/cert.pem",
                        "-days", "2", "-subj", "/CN=localhost"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        p = self.ports
        # inbound_checks = no: the peer (Postfix -> Dovecot LMTP) checks no
        # SPF, DKIM or DMARC, so neither does Postroom here (their cost is
        # measured on its own by bench/inbound_checks.sh); with them on, every
        # message would also wait for lookups refused by the unused DNS port.
        with open(self.conf, "w") as f:
            f.write(f"""hostname = mail.example.test
data_dir = {self.dir}/data
tls_cert = {self.dir}/cert.pem
tls_key = {self.dir}/key.pem
smtp_listen = 127.0.0.1:{p['smtp']}
submission_listen = 127.0.0.1:{p['sub']}
smtps_listen =
imap_listen = 127.0.0.1:{p['imap']}
imaps_listen = 127.0.0.1:{p['imaps']}
pop3_listen = 127.0.0.1:{p['pop3']}
pop3s_listen = 127.0.0.1:{p['pop3s']}
allow_plaintext_auth = yes
max_message_size = 50M
max_connections = 10000
max_connections_per_ip = 10000
dns_servers = 127.0.0.1:{self.dnsport}
outbound_port = {self.sinkport}
submission_rate_limit = 0
inbound_checks = no
""")
        self.ctl("domain", "add", "example.test")
        users = ["bench", "big", "pop"] + [f"l{i}" for i in range(1, 11)]
        for u in users:
            self.ctl("user", "add", f"{u}@example.test", "--password-stdin", inp=PW + "\n")

    def ctl(self, *args, inp=None):
        return subprocess.run([f"{self.bin}/mailctl", "-c", self.conf, *args], input=inp,
                              text=True, check=True, capture_output=True).stdout

    def inbox(self, user):
        base = f"{self.dir}/data/mail/example.test/{user}"
        for d in os.listdir(base):
            try:
                if open(f"{base}/{d}/postroom-mailbox").readline().strip() == "name INBOX":
                    return f"{base}/{d}"
            except (NotADirectoryError, FileNotFoundError):
                continue
        raise RuntimeError("no INBOX for " + user)

    def start(self, name):
        logf = open(f"{self.dir}/{name}.log", "ab")
        self.procs[name] = subprocess.Popen([f"{self.bin}/{name}", "-c", self.conf],
                                            stderr=logf, stdout=logf, start_new_session=True)
        port = {"smtpd": "smtp", "imapd": "imap", "pop3d": "pop3"}.get(name)
        if port:
            wait_port("127.0.0.1", self.ports[port])

    def stop(self, name):
        p = self.procs.pop(name, None)
        if p and p.poll() is None:
            p.terminate()
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def pids(self, *names):
        return [self.procs[n].pid for n in names if n in self.procs]

    def close(self):
        for n in list(self.procs):
            self.stop(n)
        shutil.rmtree(self.dir, ignore_errors=True)


class Peers:
    """The kit's Postfix (127.0.0.1:10025 -> Dovecot LMTP) and Dovecot; only
    what this run started is stopped at the end."""

    def __init__(self):
        self.started_pf = self.started_dv = False
        if not self.alive(self.dv_pid()):
            self.restart_dovecot()
            self.started_dv = True
        if not self.alive(self.pf_pid()):
            subprocess.run(["postfix", "-c", f"{A}/postfix/etc", "start"], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.started_pf = True
            wait_port("127.0.0.1", 10025)

    @staticmethod
    def alive(pid):
        try:
            return pid is not None and os.kill(pid, 0) is None
        except OSError:
            return False

    @staticmethod
    def dv_pid():
        try:
            return int(open(f"{A}/dovecot/run/master.pid").read().strip())
        except (OSError, ValueError):
            return None

    @staticmethod
    def pf_pid():
        try:
            return int(open(f"{A}/postfix/spool/pid/master.pid").read().strip())
        except (OSError, ValueError):
            return None

    def restart_dovecot(self):
        # The daemons keep the fds they were started with: no pipes here.
        subprocess.run([f"{A}/bin/dovecot_restart.sh", f"{A}/dovecot/dovecot.conf"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port("127.0.0.1", 10143)
        self.started_dv = True

    def close(self):
        if self.started_pf:
            subprocess.run(["postfix", "-c", f"{A}/postfix/etc", "stop"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if self.started_dv and self.alive(self.dv_pid()):
            os.kill(self.dv_pid(), signal.SIGTERM)


# ---------------------------------------------------------------- SMTP in
def gen_smtp(kind, host, port, n, sessions, size, rcpt, frm="sender@client.test", auth=None):
    """kind 'source': Postfix's smtp-source, a new connection per message;
    'reuse': bench/smtp/smtp_load, connections kept open. Returns seconds."""
    if kind == "source":
        cmd = ["smtp-source", "-s", str(sessions), "-m", str(n), "-l", str(size),
               "-M", "client.test", "-f", frm, "-t", rcpt, f"{host}:{port}"]
    else:
        cmd = [LOAD, "-h", host, "-p", str(port), "-n", str(n), "-c", str(sessions),
               "-s", str(size), "-f", frm, "-t", rcpt] + (["-a", auth] if auth else [])
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    el = time.monotonic() - t0
    if r.returncode != 0:
        log(f"  generator {kind} rc={r.returncode}: {(r.stdout + r.stderr).strip()[:300]}")
    return el


IO_WRITERS = 2
IO_CHUNK = 1 << 20
IO_FILE_MAX = 256 << 20


def io_writer(path):
    """Keeps the disk busy: 1 MiB written and fsync'd, again and again,
    the file started over at IO_FILE_MAX so that it does not grow."""
    buf = os.urandom(IO_CHUNK)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    off = 0
    while True:
        os.pwrite(fd, buf, off)
        os.fsync(fd)
        off = (off + IO_CHUNK) % IO_FILE_MAX


class IOLoad:
    """IO_WRITERS background writers (io_writer) in scratch files on the
    file system of both sides' data (/tmp: Postroom's data_dir and the
    kit's maildirs), from start() to stop(); stop() returns the MiB they
    wrote and the 1-minute load average at the end."""

    def __init__(self, scratch):
        self.scratch, self.procs, self.t0 = scratch, [], 0.0

    def start(self):
        self.t0 = time.monotonic()
        for i in range(IO_WRITERS):
            path = f"{self.scratch}/ioload.{i}"
            self.procs.append(subprocess.Popen(
                [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                 "import sbs; sbs.io_writer(sys.argv[2])", os.path.dirname(__file__), path],
                start_new_session=True))
        # Let the writers reach their steady state before the run.
        time.sleep(2)

    def stop(self):
        la, written = loadavg(), 0
        for p in self.procs:
            try:
                io = dict(ln.split(": ") for ln in open(f"/proc/{p.pid}/io").read().splitlines())
                written += int(io["wchar"])
            except (OSError, KeyError, ValueError):
                pass
            p.kill()
            p.wait()
        self.procs = []
        for i in range(IO_WRITERS):
            try:
                os.unlink(f"{self.scratch}/ioload.{i}")
            except FileNotFoundError:
                pass
        return la, (written >> 20) / (time.monotonic() - self.t0)


def smtp_in(cfg, pr, peers, tab):
    pin = pr.inbox("bench")
    pdirs = [f"{pin}/new", f"{pin}/cur"]
    dmd = f"{A}/mail/anchor.test/bench/Maildir"
    ddirs = [f"{dmd}/new", f"{dmd}/cur"]
    loads = [(1024, 10, cfg.n1k, False), (102400, 10, cfg.n100k, False),
             (1024, 1, cfg.n1s, False)]
    if cfg.io_load:
        loads.append((1024, 1, cfg.n1s, True))
    if cfg.smtp_loads:
        want = cfg.smtp_loads.split(",")
        loads = [ld for ld in loads if
                 f"{ld[0] // 1024}k{ld[1]}{'io' if ld[3] else ''}" in want]
    for size, sess, n, io in loads:
        for kind in ("source", "reuse"):
            iol = IOLoad(pr.dir) if io else None

            def loaded(run):
                """run() under the I/O load if there is one; the load
                average at its end and the writers' MiB/s go beside it."""
                def f():
                    if iol is None:
                        return run()
                    iol.start()
                    try:
                        r = run()
                    finally:
                        la, mibs = iol.stop()
                    r.update(la_end=la, io_mibs=mibs)
                    return r
                return f

            def a():
                before = nfiles(*pdirs)
                c0 = tree_cpu(pr.pids("smtpd"))
                t0 = time.monotonic()
                acc = gen_smtp(kind, "127.0.0.1", pr.ports["smtp"], n, sess, size,
                               "bench@example.test")
                got = wait_files(pdirs, before + n, 600) - before
                land = time.monotonic() - t0
                cpu = tree_cpu(pr.pids("smtpd")) - c0
                return dict(acc=n / acc, land=got / land, cpu=cpu * 1000 / n, got=got)

            def b():
                shutil.rmtree(dmd, ignore_errors=True)
                os.sync()
                roots = [peers.pf_pid(), peers.dv_pid()]
                c0 = tree_cpu(roots)
                t0 = time.monotonic()
                acc = gen_smtp(kind, "127.0.0.1", 10025, n, sess, size, "bench@anchor.test")
                got = wait_files(ddirs, n, 900)
                land = time.monotonic() - t0
                cpu = tree_cpu(roots) - c0
                return dict(acc=n / acc, land=got / land, cpu=cpu * 1000 / n, got=got)

            gname = ("smtp-source, new connection per message" if kind == "source"
                     else "smtp_load, connections reused")
            if io:
                gname += f", under I/O load ({IO_WRITERS} writers fsyncing 1 MiB chunks)"
            log(f"smtp {size} B x{n}, {sess} sessions, {gname}")
            ra, rb, la, lb = alternate(cfg.runs, loaded(a), loaded(b))
            if io:
                # The load average at the end of each run (the writers'
                # load included), and what the writers managed meanwhile.
                la, lb = col(ra, "la_end"), col(rb, "la_end")
                log(f"  I/O writers MiB/s: Postroom runs {col(ra, 'io_mibs')}, "
                    f"peer runs {col(rb, 'io_mibs')}")
            what = f"SMTP in {size // 1024} KiB, {sess} session{'s' if sess > 1 else ''}, {gname}"
            for key, unit, better in (("land", "msgs/s landed", "higher"),
                                      ("acc", "msgs/s accepted", "higher"),
                                      ("cpu", "server CPU-s per 1,000", "lower")):
                tab.add("smtp", what, unit, better, "Postfix+Dovecot", col(ra, key), col(rb, key),
                        la, lb)
            short = [x["got"] for x in ra + rb if x["got"] < n]
            if short:
                log(f"  WARNING: not all messages landed: {short}")
    shutil.rmtree(dmd, ignore_errors=True)


# ---------------------------------------------------------------- mail sets
def make_set(path, count, size=None):
    subprocess.run([sys.executable, f"{A}/bin/genmail.py", "maildir", path, str(count)]
                   + ([str(size)] if size else []), check=True)


def load_both(pr, puser, dmd, src):
    """Hard-links the same message files into Postroom's INBOX of puser
    (then mailctl reindex) and into Dovecot's maildir dmd."""
    inbox = pr.inbox(puser)
    shutil.rmtree(dmd, ignore_errors=True)
    for d in ("cur", "new", "tmp"):
        os.makedirs(f"{dmd}/{d}", exist_ok=True)
    for name in os.listdir(f"{src}/cur"):
        os.link(f"{src}/cur/{name}", f"{inbox}/cur/{name}")
        os.link(f"{src}/cur/{name}", f"{dmd}/cur/{name}")
    subprocess.run(["chown", "-R", "mail:mail", os.path.dirname(dmd)], check=True)
    pr.ctl("reindex", f"{puser}@example.test")
    os.sync()


# ---------------------------------------------------------------- POP3
def pop3(cfg, pr, peers, tab):
    src = f"{cfg.tmp}/pop-src"
    make_set(src, cfg.npop, 4096)
    dmd = f"{A}/mail/anchor.test/pop/Maildir"
    load_both(pr, "pop", dmd, src)
    subprocess.run(["doveadm", "-c", f"{A}/dovecot/dovecot.conf", "force-resync", "-u",
                    "pop@anchor.test", "INBOX"], capture_output=True)
    for depth in (1, 32):
        def run(port, user, pw, pid_roots):
            c0 = tree_cpu(pid_roots)
            r = subprocess.run([POPLOAD, "-h", "127.0.0.1", "-p", str(port), "-u", user, "-w", pw,
                                "-n", str(cfg.npop), "-d", str(depth)],
                               capture_output=True, text=True, timeout=900)
            cpu = tree_cpu(pid_roots) - c0
            m = re.search(r"seconds=([0-9.]+)", r.stdout)
            if r.returncode or not m:
                log(f"  pop3_load rc={r.returncode}: {(r.stdout + r.stderr)[:300]}")
                return None
            return dict(rate=cfg.npop / float(m.group(1)), cpu=cpu * 1000 / cfg.npop)

        log(f"pop3 RETR {cfg.npop} x 4 KiB, depth {depth}")
        ra, rb, la, lb = alternate(
            cfg.runs, lambda: run(pr.ports["pop3"], "pop@example.test", PW, pr.pids("pop3d")),
            lambda: run(10110, "pop@anchor.test", DPW, [peers.dv_pid()]))
        what = f"POP3 RETR {cfg.npop:,} x 4 KiB, one session, " + \
            ("one by one" if depth == 1 else "pipelined 32 deep")
        tab.add("pop3", what, "msgs/s", "higher", "Dovecot", col(ra, "rate"), col(rb, "rate"), la, lb)
        tab.add("pop3", what, "server CPU-s per 1,000", "lower", "Dovecot", col(ra, "cpu"),
                col(rb, "cpu"), la, lb)
    shutil.rmtree(os.path.dirname(dmd), ignore_errors=True)


# ---------------------------------------------------------------- IMAP
class Imap:
    def __init__(self, port, tls=False):
        s = socket.create_connection(("127.0.0.1", port), timeout=900)
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            s = ctx.wrap_socket(s)
        self.s, self.n, self.buf = s, 0, b""
        self.rbuf = bytearray(1 << 20)
        self.readline()

    def readline(self):
        while b"\r\n" not in self.buf:
            d = self.s.recv(1 << 20)
            if not d:
                raise EOFError
            self.buf += d
        i = self.buf.index(b"\r\n") + 2
        line, self.buf = self.buf[:i], self.buf[i:]
        return line

    def cmd(self, c):
        """Sends one command, reads to its tagged reply; returns seconds. No
        parsing: the last complete line that starts with the tag ends it."""
        self.n += 1
        tag = b"a%d " % self.n
        t0 = time.perf_counter()
        self.s.sendall(tag + c.encode() + b"\r\n")
        tail, pending, self.buf = b"", self.buf, b""
        view = memoryview(self.rbuf)
        while True:
            if pending:
                tail, pending = (tail + pending)[-8192:], b""
            else:
                # into one reused buffer: recv(1 MiB) would allocate (and
                # fault in) a fresh megabyte per call, client time that
                # the timing would count against the server
                n = self.s.recv_into(self.rbuf)
                if not n:
                    raise EOFError
                tail = bytes(view[n - 8192:n]) if n >= 8192 else \
                    (tail + bytes(view[:n]))[-8192:]
            if tail.endswith(b"\r\n"):
                i = tail.rfind(b"\r\n", 0, len(tail) - 2)
                last = tail[i + 2:] if i >= 0 else tail
                if last.startswith(tag):
                    el = time.perf_counter() - t0
                    if not last[len(tag):].startswith(b"OK"):
                        raise RuntimeError(f"{c}: {last!r}")
                    return el

    def close(self):
        try:
            self.cmd("LOGOUT")
        except (OSError, EOFError, RuntimeError):
            pass
        self.s.close()


def imap_session(port, user, pw):
    c = Imap(port)
    c.cmd(f"LOGIN {user} {pw}")
    return c


def imap_big(cfg, pr, peers, tab):
    src = f"{cfg.tmp}/big-src"
    log(f"imap: generating {cfg.nbig:,} messages, loading both")
    make_set(src, cfg.nbig)
    dmd = f"{A}/mail/anchor.test/big/Maildir"
    t0 = time.monotonic()
    load_both(pr, "big", dmd, src)
    log(f"  loaded in {time.monotonic() - t0:.0f} s")
    P = (pr.ports["imap"], "big@example.test", PW)
    D = (10143, "big@anchor.test", DPW)
    hdr = "FETCH 1:* BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)]"
    # Warm-up (untimed): Dovecot builds its index and header cache here.
    for args in (P, D):
        c = imap_session(*args)
        c.cmd("SELECT INBOX")
        c.cmd(hdr)
        c.close()

    def cold(restart, args):
        def f():
            restart()
            drop_caches()
            c = imap_session(*args)
            el = c.cmd("SELECT INBOX")
            c.close()
            return dict(t=el * 1000)
        return f

    def pr_restart():
        pr.stop("imapd")
        pr.start("imapd")

    log("imap: SELECT cold")
    ra, rb, la, lb = alternate(cfg.runs, cold(pr_restart, P), cold(peers.restart_dovecot, D))
    tab.add("imap", f"SELECT {cfg.nbig:,}-message INBOX, cold (caches dropped, restarted)",
            "ms", "lower", "Dovecot", col(ra, "t"), col(rb, "t"), la, lb)

    def ops(args):
        def f():
            c = imap_session(*args)
            c.cmd("SELECT INBOX")
            r = dict(sel=c.cmd("SELECT INBOX") * 1000, flags=c.cmd("UID FETCH 1:* (FLAGS)"),
                     hdr=c.cmd(hdr), store=c.cmd("STORE 1:* +FLAGS (\\Flagged)"))
            c.close()
            c = imap_session(*args)
            r["after"] = c.cmd("SELECT INBOX") * 1000
            c.cmd("STORE 1:* -FLAGS.SILENT (\\Flagged)")   # back as it was, untimed
            c.close()
            c = imap_session(*args)
            c.cmd("SELECT INBOX")
            c.close()
            return r
        return f

    log("imap: warm SELECT, FETCH, STORE")
    ra, rb, la, lb = alternate(cfg.runs, ops(P), ops(D))
    n = f"{cfg.nbig:,}"
    for key, what, unit in (
            ("sel", f"SELECT {n}-message INBOX, warm", "ms"),
            ("flags", f"UID FETCH 1:* (FLAGS), {n} messages", "s"),
            ("hdr", f"FETCH 1:* three header fields, {n} messages", "s"),
            ("store", f"STORE 1:* +FLAGS (\\Flagged), {n} messages", "s"),
            ("after", "SELECT right after that STORE (Dovecot resyncs here)", "ms")):
        tab.add("imap", what, unit, "lower", "Dovecot", col(ra, key), col(rb, key), la, lb)
    shutil.rmtree(os.path.dirname(dmd), ignore_errors=True)


# ---------------------------------------------------------------- logins
def login_loop(args):
    port, user, pw, count = args
    for _ in range(count):
        c = Imap(port)
        c.cmd(f"LOGIN {user} {pw}")
        c.cmd("SELECT INBOX")
        c.cmd("STATUS INBOX (MESSAGES UNSEEN UIDNEXT)")
        c.cmd("NOOP")
        c.cmd("LOGOUT")
        c.s.close()
    return count


async def tls_client(port, user, pw, count, ctx):
    done = 0
    for _ in range(count):
        r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                             ssl_handshake_timeout=900)
        await r.readline()
        w.write(f"a1 LOGIN {user} {pw}\r\n".encode())
        while True:
            line = await r.readline()
            if not line:
                raise EOFError("connection closed before the LOGIN reply")
            if line.startswith(b"a1 "):
                break
        w.write(b"a2 LOGOUT\r\n")
        while True:
            line = await r.readline()
            if not line or line.startswith(b"a2 "):
                break
        w.close()
        try:
            await w.wait_closed()
        except (OSError, ssl.SSLError):
            pass
        done += 1
    return done


def tls_storm(port, users, pw, clients, count):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE

    async def main():
        return await asyncio.gather(*(tls_client(port, users[i % len(users)], pw, count, ctx)
                                      for i in range(clients)), return_exceptions=True)
    t0 = time.monotonic()
    res = asyncio.run(main())
    el = time.monotonic() - t0
    ok = sum(r for r in res if isinstance(r, int))
    bad = [r for r in res if not isinstance(r, int)]
    if bad:
        log(f"  TLS clients failed: {len(bad)} ({bad[0]!r})")
    return ok / el


def logins(cfg, pr, peers, tab):
    pusers = [f"l{i}@example.test" for i in range(1, 11)]
    dusers = [f"u{i:03d}@anchor.test" for i in range(1, 11)]
    for u in dusers:
        d = f"{A}/mail/anchor.test/{u[:4]}/Maildir"
        for s in ("cur", "new", "tmp"):
            os.makedirs(f"{d}/{s}", exist_ok=True)
    subprocess.run(["chown", "-R", "mail:mail", f"{A}/mail/anchor.test"], check=True)

    def loops(port, users, pw, roots):
        def f():
            c0 = tree_cpu(roots)
            t0 = time.monotonic()
            # Threads, not processes: the clients mostly wait on sockets, and
            # a fork()ed pool deadlocked here once.
            with concurrent.futures.ThreadPoolExecutor(len(users)) as ex:
                n = sum(ex.map(login_loop, [(port, u, pw, cfg.nloop) for u in users]))
            el = time.monotonic() - t0
            return dict(rate=n / el, cpu=(tree_cpu(roots) - c0) * 1000 / n)
        return f

    log(f"logins: 10 clients x {cfg.nloop} loops")
    ra, rb, la, lb = alternate(cfg.runs, loops(pr.ports["imap"], pusers, PW, pr.pids("imapd")),
                               loops(10143, dusers, DPW, [peers.dv_pid()]))
    what = ("IMAP login loops, 10 clients (connect, LOGIN, SELECT, STATUS, NOOP, LOGOUT); "
            "Postroom Argon2id, Dovecot plaintext passdb")
    tab.add("login", what, "loops/s", "higher", "Dovecot", col(ra, "rate"), col(rb, "rate"), la, lb)
    tab.add("login", what, "server CPU-s per 1,000", "lower", "Dovecot", col(ra, "cpu"),
            col(rb, "cpu"), la, lb)
    log(f"logins: TLS, {cfg.tls_clients} clients x {cfg.tls_count}")
    ra, rb, la, lb = alternate(
        cfg.runs,
        lambda: tls_storm(pr.ports["imaps"], pusers, PW, cfg.tls_clients, cfg.tls_count),
        lambda: tls_storm(10993, dusers, DPW, cfg.tls_clients, cfg.tls_count))
    tab.add("login", f"IMAPS logins while {cfg.tls_clients} clients reconnect (LOGIN, LOGOUT)",
            "logins/s", "higher", "Dovecot", ra, rb, la, lb)


# ---------------------------------------------------------------- outbound
class Sink:
    """Postfix's smtp-sink on 127.0.0.2; counts from its -c counter line."""

    def __init__(self, port):
        self.count = 0
        self.p = subprocess.Popen(["smtp-sink", "-u", "nobody", "-c", f"127.0.0.2:{port}", "256"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        threading.Thread(target=self.read, daemon=True).start()
        wait_port("127.0.0.2", port)

    def read(self):
        buf = b""
        while True:
            d = self.p.stdout.read1(65536)
            if not d:
                return
            buf = (buf + d)[-256:]
            m = re.findall(rb"mesg=(\d+)", buf)
            if m:
                self.count = int(m[-1])

    def wait(self, want, secs):
        end = time.time() + secs
        while self.count < want and time.time() < end:
            time.sleep(0.01)
        return self.count

    def close(self):
        if self.p.poll() is None:
            self.p.terminate()
            self.p.wait()


class PostfixOut:
    """A second Postfix instance (its own queue in a temporary directory)
    relaying everything to relayhost = [127.0.0.2]:port, the sink."""

    def __init__(self, sinkport, tmp):
        self.d = d = f"{tmp}/postfix-out"
        self.port = free_port()
        for s in ("etc", "spool", "data", "log"):
            os.makedirs(f"{d}/{s}", exist_ok=True)
        with open(f"{d}/etc/main.cf", "w") as f:
            f.write(f"""compatibility_level = 3.6
queue_directory = {d}/spool
data_directory = {d}/data
maillog_file_prefixes = {tmp}
maillog_file = {d}/log/postfix.log
myhostname = out.anchor.test
mydomain = anchor.test
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination =
relayhost = [127.0.0.2]:{sinkport}
alias_maps =
alias_database =
local_recipient_maps =
local_transport = error:local delivery disabled
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_banner = $myhostname ESMTP
message_size_limit = 52428800
biff = no
append_dot_mydomain = no
""")
        master = open(f"{A}/postfix/etc/master.cf").read()
        master = re.sub(r"^127\.0\.0\.1:10025 ", f"127.0.0.1:{self.port} ", master, flags=re.M)
        open(f"{d}/etc/master.cf", "w").write(master)
        subprocess.run(["postfix", "-c", f"{d}/etc", "check"], capture_output=True)
        subprocess.run(["chown", "postfix", f"{d}/data", f"{d}/log"], check=True)
        subprocess.run(["postfix", "-c", f"{d}/etc", "start"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port("127.0.0.1", self.port)

    def pid(self):
        return int(open(f"{self.d}/spool/pid/master.pid").read().strip())

    def close(self):
        subprocess.run(["postfix", "-c", f"{self.d}/etc", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def pct(xs, q):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def delays(path, off, pat):
    with open(path, "rb") as f:
        f.seek(off)
        text = f.read().decode("utf-8", "replace")
    return [float(m) for m in re.findall(pat, text)]


def outbound(cfg, pr, tab):
    sys.path.insert(0, os.path.join(ROOT, "tests", "proto", "outbound"))
    from rig import DNS
    dns = DNS(pr.dnsport)
    dns.mx("remote.test", (10, "mx.remote.test", ["127.0.0.2"]))
    sink = Sink(pr.sinkport)
    pf = None
    try:
        pf = PostfixOut(pr.sinkport, cfg.tmp)
        pr.start("mtad")
        auth = base64.b64encode(f"\0bench@example.test\0{PW}".encode()).decode()
        mlog = f"{pr.dir}/mtad.log"
        plog = f"{pf.d}/log/postfix.log"
        for dkim in (False, True):
            if dkim:
                pr.ctl("dkim", "generate", "example.test")
                pr.stop("smtpd")
                pr.start("smtpd")
            for size, n in ((1024, cfg.nout1k), (102400, cfg.nout100k)):
                def a():
                    c0 = tree_cpu(pr.pids("smtpd", "mtad"))
                    off = os.path.getsize(mlog)
                    before = sink.count
                    t0 = time.monotonic()
                    gen_smtp("reuse", "127.0.0.1", pr.ports["sub"], n, 10, size,
                             "sink@remote.test", frm="bench@example.test", auth=auth)
                    got = sink.wait(before + n, 600) - before
                    el = time.monotonic() - t0
                    cpu = tree_cpu(pr.pids("smtpd", "mtad")) - c0
                    d = delays(mlog, off, r"delay=(\d+)s[^\n]*status=sent")
                    return dict(rate=got / el, cpu=cpu * 1000 / n, p50=pct(d, 0.5),
                                p99=pct(d, 0.99), got=got)

                def b():
                    c0 = tree_cpu([pf.pid()])
                    off = os.path.getsize(plog) if os.path.exists(plog) else 0
                    before = sink.count
                    t0 = time.monotonic()
                    gen_smtp("reuse", "127.0.0.1", pf.port, n, 10, size, "sink@remote.test",
                             frm="bench@anchor.test")
                    got = sink.wait(before + n, 900) - before
                    el = time.monotonic() - t0
                    cpu = tree_cpu([pf.pid()]) - c0
                    d = delays(plog, off, r"relay=[^\n]*?delay=([0-9.]+),[^\n]*status=sent")
                    return dict(rate=got / el, cpu=cpu * 1000 / n, p50=pct(d, 0.5),
                                p99=pct(d, 0.99), got=got)

                log(f"outbound {size} B x{n}, DKIM {'on' if dkim else 'off'}")
                ra, rb, la, lb = alternate(cfg.runs, a, b)
                what = (f"Outbound {size // 1024} KiB, 10 sessions, submission -> queue -> "
                        f"smtp-sink, Postroom DKIM {'on (RSA 2048)' if dkim else 'off'}")
                peer = "Postfix (no DKIM)"
                tab.add("out", what, "msgs/s end to end", "higher", peer, col(ra, "rate"),
                        col(rb, "rate"), la, lb)
                tab.add("out", what, "server CPU-s per 1,000", "lower", peer, col(ra, "cpu"),
                        col(rb, "cpu"), la, lb)
                tab.add("out", what, "queue delay p50, s (mtad logs whole s)", "lower", peer,
                        col(ra, "p50"), col(rb, "p50"), la, lb)
                tab.add("out", what, "queue delay p99, s", "lower", peer, col(ra, "p99"),
                        col(rb, "p99"), la, lb)
                short = [x["got"] for x in ra + rb if x["got"] < n]
                if short:
                    log(f"  WARNING: not all messages reached the sink: {short}")
    finally:
        pr.stop("mtad")
        if pf:
            pf.close()
        sink.close()
        dns.stop()


# ---------------------------------------------------------------- main
SECTIONS = ("smtp", "pop3", "imap", "login", "out")


def main():
    global LOAD, POPLOAD
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int)
    ap.add_argument("--only", default=",".join(SECTIONS))
    ap.add_argument("--io-load", action="store_true",
                    help="SMTP: also 1 KiB, one session, under background fsync'ing writers")
    ap.add_argument("--smtp-loads", default="",
                    help="SMTP: only these loads, e.g. 1k10,100k10,1k1,1k1io")
    cfg = ap.parse_args()
    q = cfg.quick
    cfg.runs = cfg.runs or (1 if q else 3)
    cfg.n1k, cfg.n100k, cfg.n1s = (300, 100, 100) if q else (1000, 300, 300)
    cfg.npop = 1000 if q else 5000
    cfg.nbig = 10000 if q else 100000
    cfg.nloop = 5 if q else 10
    cfg.tls_clients, cfg.tls_count = (20, 2) if q else (50, 2)
    cfg.nout1k, cfg.nout100k = (300, 100) if q else (1000, 200)
    only = cfg.only.split(",")
    if os.geteuid() != 0:
        sys.exit("sbs.py: needs root (drop_caches, the kit's Postfix and Dovecot, smtp-sink)")
    if not os.path.exists(f"{A}/bin/dovecot_restart.sh"):
        sys.exit("sbs.py: the peers kit is missing: run setup-peers.sh from the shared peers "
                 "directory as root (it builds /tmp/anchor), or use BENCH_POSTROOM_ONLY=1")
    out = os.path.join(ROOT, "build", "bench-sbs")
    os.makedirs(out, exist_ok=True)
    LOAD = f"{out}/smtp_load"
    POPLOAD = f"{out}/pop3_load"
    subprocess.run(["cc", "-O2", "-pthread", "-o", LOAD, f"{ROOT}/bench/smtp/smtp_load.c"],
                   check=True)
    subprocess.run(["cc", "-std=c11", "-D_GNU_SOURCE", "-O2", "-o", POPLOAD,
                    f"{ROOT}/bench/pop3/pop3_load.c", "-lssl", "-lcrypto"], check=True)
    cfg.tmp = tempfile.mkdtemp(prefix="sbs-")
    os.chmod(cfg.tmp, 0o755)
    tab = Table(cfg.runs)
    pr = peers = None
    started = time.time()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        pr = Postroom(cfg.bin)
        for d in ("smtpd", "imapd", "pop3d"):
            pr.start(d)
        peers = Peers()
        for name, fn, args in (("smtp", smtp_in, (peers,)), ("pop3", pop3, (peers,)),
                               ("imap", imap_big, (peers,)), ("login", logins, (peers,)),
                               ("out", outbound, ())):
            if name in only:
                fn(cfg, pr, *args, tab)
                # Written after every section: a long run stopped half-way
                # still leaves what it measured.
                write_results(cfg, tab, started)
    finally:
        if pr:
            pr.close()
        if peers:
            peers.close()
        shutil.rmtree(cfg.tmp, ignore_errors=True)
    print(write_results(cfg, tab, started))


def write_results(cfg, tab, started):
    head = (f"Side by side, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}, "
            f"{os.cpu_count()} CPU, medians of {cfg.runs} run(s) alternating Postroom / peer"
            f"{' (BENCH_QUICK: small counts)' if cfg.quick else ''}; ratio > 1 = Postroom better; "
            f"HIGH = 1-min load average above {HIGH_LOAD} before a run")
    text = head + "\n\n" + tab.text() + "\n"
    res = os.path.join(ROOT, "bench", "results")
    os.makedirs(res, exist_ok=True)
    with open(f"{res}/sbs.txt", "w") as f:
        f.write(text)
    with open(f"{res}/sbs.json", "w") as f:
        json.dump(tab.rows, f, indent=1)
    return text


if __name__ == "__main__":
    main()
