#!/usr/bin/env python3
"""imapd core benchmark (RFC 3501 operations on big mailboxes).

  bench/imap_core_bench.py [--sizes 1000,10000,100000] [--clients 32]
                           [--seconds 10] [--bin build/bin] [--json FILE]

For each mailbox size, a fresh instance gets N small messages (APPEND with
LITERAL+, pipelined over 16 connections), then imapd is restarted and we time:
  select_cold   first SELECT INBOX after the restart (and after dropping the
                page cache when running as root: "cold" is then real)
  select_warm   the same SELECT again
  flags         UID FETCH 1:* (FLAGS)
  headers_cold  FETCH 1:* (BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)]) after
                a restart (+ page cache drop as root)
  headers_warm  the same again
  search_body   SEARCH BODY "<a word in 1% of the messages>" (message files
                cold unless the header fetch read them), then again warm
  rss_kib       imapd RSS after all of this; peak_rss_kib its VmHWM (which
                includes Argon2id's 64 MiB per concurrent login)
Then a mixed load from --clients concurrent sessions (one process each) for
--seconds: NOOP, UID FETCH of flags, BODY.PEEK[] of one message, UID STORE
+/-FLAGS, SEARCH UNSEEN, STATUS; reported as operations per second.
Goals (issue): flags < 0.1 s, headers < 0.5 s warm / 2 s cold, cold SELECT
< 50 ms. Stdlib only.
"""
import argparse
import json
import multiprocessing
import os
import random
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "proto"))

USER = "bench@example.test"


def make_msg(i):
    words = ["alpha", "beta", "gamma", "delta", "report", "meeting", "invoice",
             "lunch", "project", "status"]
    rnd = random.Random(i)
    subj = " ".join(rnd.choice(words) for _ in range(4))
    body = "\r\n".join(" ".join(rnd.choice(words) for _ in range(12))
                       for _ in range(rnd.randint(5, 30)))
    if i % 100 == 7:
        body += "\r\nthe zanzibar needle\r\n"
    return ("From: Sender %d <s%d@example.org>\r\nTo: %s\r\nSubject: %s %d\r\n"
            "Date: Mon, 23 Nov 2026 10:%02d:%02d +0000\r\n"
            "Message-ID: <%d@bench.test>\r\n\r\n%s\r\n"
            % (i % 97, i % 97, USER, subj, i, (i // 60) % 60, i % 60, i,
               body)).encode()


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=600)
        self.buf = b""
        self.n = 0
        self.line()

    def _fill(self):
        d = self.s.recv(1 << 20)
        if not d:
            raise EOFError
        self.buf += d

    def line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                out, self.buf = self.buf[:i + 2], self.buf[i + 2:]
                if out.endswith(b"}\r\n") and b"{" in out:
                    n = int(out[out.rindex(b"{") + 1:-3])
                    while len(self.buf) < n:
                        self._fill()
                    self.buf = self.buf[n:]
                    return out + self.line()
                return out
            self._fill()

    def cmd(self, text):
        self.n += 1
        tag = b"b%d" % self.n
        self.s.sendall(tag + b" " + text.encode() + b"\r\n")
        count = 0
        while True:
            ln = self.line()
            if ln.startswith(tag + b" "):
                if not ln.startswith(tag + b" OK"):
                    raise RuntimeError(ln)
                return count
            count += 1

    def login(self):
        from lib import PASSWORD
        self.cmd('LOGIN "%s" "%s"' % (USER, PASSWORD))


def fill(port, n, conns=16):
    cs = [Conn(port) for _ in range(conns)]
    for c in cs:
        c.login()
    per = (n + conns - 1) // conns
    for k, c in enumerate(cs):
        lo, hi = k * per, min(n, (k + 1) * per)
        for i in range(lo, hi):
            m = make_msg(i)
            c.n += 1
            c.s.sendall(b"a%d APPEND INBOX {%d+}\r\n" % (c.n, len(m)) + m + b"\r\n")
        c.pending = hi - lo
    for c in cs:
        while c.pending:
            ln = c.line()
            if ln.startswith(b"a"):
                if b" OK" not in ln:
                    raise RuntimeError(ln)
                c.pending -= 1
        c.s.close()


def drop_caches():
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def timed(c, text):
    """Wall time of one command, reading the reply as raw bytes (no Python
    parsing of the lines, so the client is not what we measure). Returns
    (seconds, number of untagged lines)."""
    c.n += 1
    tag = b"b%d" % c.n
    t = time.perf_counter()
    c.s.sendall(tag + b" " + text.encode() + b"\r\n")
    data = bytearray(c.buf)
    c.buf = b""
    end = b"\r\n" + tag + b" "
    prev = 0
    while True:
        i = data.find(end, max(0, prev - 64))
        prev = len(data)
        if i >= 0 and data.find(b"\r\n", i + 2) >= 0:
            break
        if data.startswith(tag + b" ") and data.find(b"\r\n") >= 0:
            i = -2
            break
        d = c.s.recv(1 << 22)
        if not d:
            raise EOFError
        data += d
    elapsed = time.perf_counter() - t
    if not data[i + 2:].startswith(tag + b" OK"):
        raise RuntimeError(bytes(data[i + 2:i + 200]))
    return elapsed, data.count(b"\r\n* ") + (1 if data.startswith(b"* ") else 0)


def cpu_s(pid):
    """User + system CPU seconds of process pid so far (noisy machines:
    compare this rather than wall time)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ctimed(pr, c, text):
    """timed() plus the imapd CPU seconds the command cost."""
    pid = pr.procs["imapd"].pid
    c0 = cpu_s(pid)
    el, got = timed(c, text)
    return el, got, round(cpu_s(pid) - c0, 3)


def rss_kib(pid, key="VmRSS"):
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith(key + ":"):
                return int(ln.split()[1])
    return 0


def mixed_client(port, seconds, seed, nmsg, q):
    rnd = random.Random(seed)
    c = Conn(port)
    c.login()
    c.cmd("SELECT INBOX")
    ops = 0
    end = time.time() + seconds
    while time.time() < end:
        r = rnd.random()
        u = rnd.randint(1, nmsg)
        if r < 0.2:
            c.cmd("NOOP")
        elif r < 0.4:
            c.cmd("UID FETCH %d:%d (FLAGS)" % (u, u + 50))
        elif r < 0.6:
            c.cmd("UID FETCH %d (BODY.PEEK[])" % u)
        elif r < 0.75:
            c.cmd("UID STORE %d %sFLAGS.SILENT (\\Seen)" % (u, rnd.choice("+-")))
        elif r < 0.85:
            c.cmd("UID FETCH %d (BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)])" % u)
        elif r < 0.95:
            c.cmd('STATUS "Sent" (MESSAGES UNSEEN UIDNEXT)')
        else:
            c.cmd("UID SEARCH UNSEEN FLAGGED")
        ops += 1
    c.cmd("LOGOUT") if False else None
    c.s.close()
    q.put(ops)


def run_size(binpath, n, clients, seconds):
    os.environ["POSTROOM_BIN"] = binpath
    import lib
    pr = lib.Instance({"allow_plaintext_auth": "yes",
                       "max_connections_per_ip": "1000",
                       "max_unauth_connections_per_ip": "1000"}, bindir=binpath)
    res = {"messages": n}
    try:
        pr.add_user(USER)
        pr.start("imapd")
        port = pr.port("imap")
        t = time.perf_counter()
        fill(port, n)
        res["fill_s"] = round(time.perf_counter() - t, 2)
        for phase in ("select", "headers"):
            pr.stop("imapd")
            res[phase + "_cache_dropped"] = drop_caches()
            pr.start("imapd")
            c = Conn(port)
            c.login()
            if phase == "select":
                el, _, cpu = ctimed(pr, c, "SELECT INBOX")
                res["select_cold_s"] = round(el, 4)
                res["select_cold_cpu_s"] = cpu
                el, _, cpu = ctimed(pr, c, "SELECT INBOX")
                res["select_warm_s"] = round(el, 4)
                res["select_warm_cpu_s"] = cpu
                res["flags_s"], got = timed(c, "UID FETCH 1:* (FLAGS)")
                assert got == n, got
                res["flags_s"] = round(res["flags_s"], 4)
            else:
                c.cmd("SELECT INBOX")
                q = "FETCH 1:* (BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)])"
                el, _, cpu = ctimed(pr, c, q)
                res["headers_cold_s"] = round(el, 4)
                res["headers_cold_cpu_s"] = cpu
                el, _, cpu = ctimed(pr, c, q)
                res["headers_warm_s"] = round(el, 4)
                res["headers_warm_cpu_s"] = cpu
                # The header fetch no longer reads the message files, so
                # the first body search reads them cold; the second is warm.
                res["search_body_s"] = round(
                    timed(c, 'SEARCH BODY "zanzibar"')[0], 4)
                res["search_body_warm_s"] = round(
                    timed(c, 'SEARCH BODY "zanzibar"')[0], 4)
            c.s.close()
        mq = multiprocessing.Queue()
        procs = [multiprocessing.Process(target=mixed_client,
                                         args=(port, seconds, i, n, mq))
                 for i in range(clients)]
        c0 = cpu_s(pr.procs["imapd"].pid)
        for p in procs:
            p.start()
        total = sum(mq.get() for _ in procs)
        mcpu = cpu_s(pr.procs["imapd"].pid) - c0
        for p in procs:
            p.join()
        res["mixed_clients"] = clients
        res["mixed_ops_per_s"] = round(total / seconds, 1)
        # imapd CPU per operation: the figure that survives a noisy box.
        res["mixed_cpu_ms_per_op"] = round(1000 * mcpu / max(total, 1), 3)
        # VmRSS after the load; VmHWM includes Argon2id's 64 MiB per
        # concurrent login on the worker threads, so it is reported apart.
        res["rss_kib"] = rss_kib(pr.procs["imapd"].pid)
        res["peak_rss_kib"] = rss_kib(pr.procs["imapd"].pid, "VmHWM")
    finally:
        pr.stop_all()
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    ap.add_argument("--json")
    a = ap.parse_args()
    out = []
    for n in [int(x) for x in a.sizes.split(",")]:
        r = run_size(os.path.abspath(a.bin), n, a.clients, a.seconds)
        print(json.dumps(r), flush=True)
        out.append(r)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
