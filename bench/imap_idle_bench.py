#!/usr/bin/env python3
"""IDLE benchmark: N concurrent authenticated IMAP connections in IDLE on INBOX.

Reports the total RSS of imapd (all its processes) and per connection, and the
latency from the SMTP 250 of a delivery to the '* n EXISTS' reaching every one
of the IDLE sessions.

  bench/imap_idle_bench.py [--conns 10000] [--per-user 50] [--tls] [--bin DIR]

It starts its own instance (imapd + smtpd, built binaries from --bin, default
build/bin) with the test harness, so nothing else is disturbed; users are spread
so that each has at most --per-user connections, and client sockets are bound to
127.0.0.2..127.0.0.254 in turn so per-address limits do not cap the run. The
fd limit is raised here (soft to hard), not in the tests. Stdlib only.
"""
import argparse
import os
import resource
import selectors
import smtplib
import socket
import ssl
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "proto"))


def rss_kib(pid):
    """RSS of a process and its descendants, KiB."""
    total = 0
    pids = [pid]
    seen = set()
    while pids:
        p = pids.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            with open(f"/proc/{p}/task/{p}/children") as f:
                pids += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return total


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    hz = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / hz


class Conn:
    __slots__ = ("sock", "user", "state", "buf", "out", "exists_at", "tls", "id")

    def __init__(self, i, user, port, tls_ctx):
        self.id = i
        self.user = user
        src = f"127.0.0.{2 + i % 253}"
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.bind((src, 0))
        except OSError:
            pass
        s.connect_ex(("127.0.0.1", port))
        self.tls = tls_ctx is not None
        if self.tls:
            s = tls_ctx.wrap_socket(s, server_hostname="mail.example.test",
                                    do_handshake_on_connect=False)
        self.sock = s
        self.state = "connect"
        self.buf = b""
        self.out = b""
        self.exists_at = None


def run_bench(args):
    import lib  # the test helpers: Instance

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, args.conns * 2 + 1000))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < args.conns + 100:
        sys.exit(f"fd limit {want} is too low for {args.conns} connections")
    inst = lib.Instance({"allow_plaintext_auth": "yes",
                         "max_connections": str(args.conns + 1000),
                         "max_connections_per_ip": str(args.conns + 1000),
                         "max_unauth_connections_per_ip": str(args.conns + 1000)},
                        bindir=os.path.abspath(args.bin) if args.bin else None)
    nusers = (args.conns + args.per_user - 1) // args.per_user
    print(f"creating {nusers} users ...", flush=True)
    users = [inst.add_user(f"idle{i}@example.test") for i in range(nusers)]
    inst.start("imapd", "smtpd")
    imapd = inst.procs["imapd"].pid
    time.sleep(0.5)
    base_rss = rss_kib(imapd)
    cpu0 = cpu_seconds(imapd)
    tls_ctx = None
    if args.tls:
        tls_ctx = lib.client_tls_context()
    port = inst.port("imaps" if args.tls else "imap")
    sel = selectors.DefaultSelector()
    conns = []
    pending = list(range(args.conns))
    idle = 0
    t_start = time.monotonic()
    inflight = 0
    try:
        while idle < args.conns:
            while pending and inflight < args.concurrency:
                i = pending.pop(0)
                c = Conn(i, users[i // args.per_user], port, tls_ctx)
                conns.append(c)
                sel.register(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
                inflight += 1
            events = sel.select(timeout=30)
            if not events:
                sys.exit(f"stalled with {idle} sessions in IDLE, {inflight} in progress")
            for key, mask in events:
                c = key.data
                before = c.state
                step(c, sel, mask)
                if c.state == "idle" and before != "idle":
                    idle += 1
                    inflight -= 1
                    if idle % 1000 == 0:
                        print(f"  {idle} in IDLE ({time.monotonic() - t_start:.1f} s)",
                              flush=True)
        setup_s = time.monotonic() - t_start
        time.sleep(2)
        rss = rss_kib(imapd)
        cpu1 = cpu_seconds(imapd)
        print(f"{args.conns} sessions in IDLE after {setup_s:.1f} s "
              f"(imapd CPU {cpu1 - cpu0:.1f} s for connect+login+select+idle)")
        print(f"imapd RSS: {base_rss / 1024:.1f} MiB before, {rss / 1024:.1f} MiB with "
              f"{args.conns} IDLE sessions -> {(rss - base_rss) / args.conns:.1f} KiB "
              f"per connection")
        if NO_IDLE:
            return
        # deliver one message to every user, recipients batched per transaction
        t250 = {}
        msg = (b"From: bench@example.test\r\nSubject: idle bench\r\n"
               b"Message-ID: <idle-bench@example.test>\r\n\r\nwake up\r\n")
        for k in range(0, len(users), args.rcpts):
            batch = users[k:k + args.rcpts]
            with smtplib.SMTP("127.0.0.1", inst.port("smtp"), timeout=60) as s:
                s.sendmail("bench@example.test", batch, msg)
                now = time.monotonic()
            for u in batch:
                t250[u] = now
        deadline = time.monotonic() + 60
        got = 0
        while got < args.conns and time.monotonic() < deadline:
            for key, mask in sel.select(timeout=5):
                c = key.data
                if c.exists_at is None:
                    step(c, sel, mask)
                    if c.exists_at is not None:
                        got += 1
        lat = sorted((c.exists_at - t250[c.user]) * 1000 for c in conns
                     if c.exists_at is not None)
        print(f"EXISTS reached {got}/{args.conns} sessions")
        if lat:
            q = statistics.quantiles(lat, n=100) if len(lat) > 1 else [lat[0]] * 99
            print(f"SMTP 250 -> EXISTS latency ms: min {lat[0]:.1f} p50 {q[49]:.1f} "
                  f"p99 {q[98]:.1f} max {lat[-1]:.1f} (all sessions: {lat[-1]:.1f})")
        print(f"imapd RSS after the wake-up: {rss_kib(imapd) / 1024:.1f} MiB; "
              f"imapd CPU for the wake-up: {cpu_seconds(imapd) - cpu1:.2f} s")
    finally:
        for c in conns:
            try:
                c.sock.close()
            except OSError:
                pass
        if "imapd" in inst.procs:
            t0 = time.monotonic()
            try:
                inst.stop("imapd", timeout=300)
            finally:
                print(f"imapd stopped {time.monotonic() - t0:.1f} s after SIGTERM")
        inst.stop_all()


def step(c, sel, mask):
    try:
        if c.state == "connect":
            if c.tls:
                try:
                    c.sock.do_handshake()
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    return
            c.state = "greeting"
            sel.modify(c.sock, selectors.EVENT_READ, c)
            return
        if c.out:
            n = c.sock.send(c.out)
            c.out = c.out[n:]
            if not c.out:
                sel.modify(c.sock, selectors.EVENT_READ, c)
            return
        data = c.sock.recv(65536)
        if not data:
            raise ConnectionError(f"connection {c.id} closed in state {c.state}: {c.buf!r}")
        c.buf += data
    except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
        return
    while b"\r\n" in c.buf:
        line, c.buf = c.buf.split(b"\r\n", 1)
        if c.state == "greeting":
            c.out = (f'a LOGIN "{c.user}" "{PASSWORD}"\r\nb SELECT INBOX\r\n'
                     + ("" if NO_IDLE else "c IDLE\r\n")).encode()
            c.state = "login"
            sel.modify(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
        elif c.state == "login":
            if line.startswith(b"a ") and not line.startswith(b"a OK"):
                raise ConnectionError(f"login failed: {line!r}")
            if line.startswith(b"b ") and not line.startswith(b"b OK"):
                raise ConnectionError(f"select failed: {line!r}")
            if line.startswith(b"c "):
                raise ConnectionError(f"IDLE refused: {line!r}")
            if line.startswith(b"+") or (NO_IDLE and line.startswith(b"b OK")):
                c.state = "idle"
        elif c.state == "idle":
            if line.endswith(b" EXISTS") and c.exists_at is None:
                c.exists_at = time.monotonic()


PASSWORD = "s3cret-Pass"
NO_IDLE = False


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--conns", type=int, default=10000)
    ap.add_argument("--per-user", type=int, default=50)
    ap.add_argument("--concurrency", type=int, default=200,
                    help="connections being set up at once")
    ap.add_argument("--rcpts", type=int, default=50, help="RCPTs per SMTP transaction")
    ap.add_argument("--tls", action="store_true", help="use the implicit-TLS port")
    ap.add_argument("--no-idle", action="store_true",
                    help="stop after SELECT (memory only; for servers without IDLE)")
    ap.add_argument("--bin", default=os.environ.get("POSTROOM_BIN",
                                                    os.path.join(HERE, "..", "build", "bin")))
    args = ap.parse_args()
    global PASSWORD, NO_IDLE
    NO_IDLE = args.no_idle
    import lib
    PASSWORD = lib.PASSWORD
    run_bench(args)


if __name__ == "__main__":
    main()
