#!/usr/bin/env python3
"""Thunderbird-like sync of a big mailbox, with COMPRESS=DEFLATE off and on.

  bench/imap_sync_bench.py [--messages 50000] [--runs 1] [--bin DIR] [--data DIR]

Phases, as Thunderbird's first sync of a folder (CLIENTS.md 1.5):
  select   SELECT INBOX
  flags    UID FETCH 1:* (FLAGS)
  headers  UID FETCH 1:* (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (...)])
  bodies   every message as BODY.PEEK[]<off.65536> partials, 64 commands in flight
For each phase: wall time, octets on the wire in both directions (after
compression), imapd CPU seconds (from /proc) and this client's CPU seconds.

The mailbox is filled once through APPEND with literals over several connections
(sizes: 90% ~3 KiB, 9% ~30 KiB, 1% ~150 KiB, deterministic); --data keeps the
instance's data dir between invocations so the fill happens only once. Stdlib only.
"""
import argparse
import json
import os
import random
import re
import resource
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "proto"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "proto", "imap"))

HEADERS = ("From To Cc Bcc Subject Date Message-ID Priority X-Priority References "
           "Newsgroups In-Reply-To Content-Type Reply-To Received")
USER = "sync@example.test"


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def client_cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def message(i, rnd):
    x = rnd.random()
    size = 3000 if x < 0.90 else 30000 if x < 0.99 else 150000
    size += rnd.randrange(0, 1000)
    head = (f"Received: from mx.example.net by mail.example.test; "
            f"Mon, 23 Nov 2026 10:00:00 +0000\r\n"
            f"From: Sender {i % 97} <s{i % 97}@example.net>\r\nTo: {USER}\r\n"
            f"Subject: message number {i}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
            f"Message-ID: <{i}.sync@example.net>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n")
    line = f"line of message {i} with some ordinary words to compress well enough.\r\n"
    body = (line * (size // len(line) + 1))[:size]
    return (head + body).encode()


def fill(target, n, conns=4):
    done = [0]
    lock = threading.Lock()

    def worker(k):
        rnd = random.Random(k)
        c = target.login()
        for i in range(k, n, conns):
            msg = message(i, rnd)
            c.send(f"a APPEND INBOX {{{len(msg)}}}\r\n")
            r = c.read_response()
            if not r.startswith(b"+"):
                raise SystemExit(f"APPEND refused: {r!r}")
            c.send(msg + b"\r\n")
            while True:
                r = c.read_response()
                if r.startswith(b"a "):
                    if not r.startswith(b"a OK"):
                        raise SystemExit(f"APPEND failed: {r!r}")
                    break
            c.log.clear()
            with lock:
                done[0] += 1
                if done[0] % 5000 == 0:
                    print(f"  appended {done[0]}", flush=True)
        c.close()
    ts = [threading.Thread(target=worker, args=(k,)) for k in range(conns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def measure(c, pid, fn):
    w0, r0 = c.wire_out, c.wire_in
    s0, cl0, t0 = cpu_seconds(pid), client_cpu(), time.monotonic()
    extra = fn()
    return {"seconds": round(time.monotonic() - t0, 3),
            "wire_in": c.wire_in - r0, "wire_out": c.wire_out - w0,
            "imapd_cpu": round(cpu_seconds(pid) - s0, 3),
            "client_cpu": round(client_cpu() - cl0, 3), **(extra or {})}


def drain(c, tag):
    n = 0
    while True:
        r = c.read_response(timeout=600)
        if r.startswith(tag.encode() + b" "):
            if not r.startswith(tag.encode() + b" OK"):
                raise SystemExit(f"{tag} failed: {r!r}")
            return n
        n += 1


def sync(target, pid, compress):
    c = target.login()
    c.log = _NoLog()
    res = {}
    if compress:
        u, t = c.ok("CAPABILITY")
        if "COMPRESS=DEFLATE" not in " ".join(u).upper():
            c.close()
            return None
        c.ok("COMPRESS DEFLATE")
        c.start_compress()
    uids_sizes = []

    def select():
        c.send("s SELECT INBOX\r\n")
        drain(c, "s")

    def flags():
        c.send("f UID FETCH 1:* (FLAGS)\r\n")
        return {"responses": drain(c, "f")}

    def headers():
        c.send(f"h UID FETCH 1:* (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS ({HEADERS})])\r\n")
        n = 0
        while True:
            r = c.read_response(timeout=600)
            if r.startswith(b"h "):
                break
            m = re.search(rb"UID (\d+)", r)
            s = re.search(rb"RFC822\.SIZE (\d+)", r)
            if m and s:
                uids_sizes.append((int(m.group(1)), int(s.group(1))))
                n += 1
        return {"responses": n}

    def bodies():
        reqs = []
        for uid, size in uids_sizes:
            for off in range(0, max(size, 1), 65536):
                reqs.append((uid, off))
        inflight, nxt, got, octets = 0, 0, 0, 0
        while got < len(reqs):
            while inflight < 64 and nxt < len(reqs):
                uid, off = reqs[nxt]
                c.send(f"b{nxt} UID FETCH {uid} (BODY.PEEK[]<{off}.65536>)\r\n")
                nxt += 1
                inflight += 1
            r = c.read_response(timeout=600)
            if r.startswith(b"b"):
                if b" OK" not in r[:20]:
                    raise SystemExit(f"body fetch failed: {r!r}")
                inflight -= 1
                got += 1
            else:
                m = re.search(rb"\{(\d+)\}\r\n", r)
                if m:
                    octets += int(m.group(1))
        return {"commands": len(reqs), "body_octets": octets}

    for name, fn in (("select", select), ("flags", flags), ("headers", headers),
                     ("bodies", bodies)):
        res[name] = measure(c, pid, fn)
    c.close()
    return res


class _NoLog(list):
    def append(self, x):
        pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=50000)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--bin", default=os.environ.get("POSTROOM_BIN",
                                                    os.path.join(HERE, "..", "build", "bin")))
    ap.add_argument("--data", help="directory to keep the instance in between runs")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    import lib
    from clients.replay import Target
    inst = lib.Instance(bindir=os.path.abspath(args.bin))
    fresh = True
    if args.data:
        os.makedirs(args.data, exist_ok=True)
        inst.data_dir = os.path.join(os.path.abspath(args.data), "data")
        fresh = not os.path.isdir(inst.data_dir)
        inst.write_config()
    try:
        if fresh:
            inst.add_user(USER)
        inst.start("imapd")
        pid = inst.procs["imapd"].pid
        t = Target("127.0.0.1", inst.port("imap"), inst.port("imaps"), USER,
                   lib.PASSWORD)
        c = t.login()
        u, _ = c.ok("STATUS INBOX (MESSAGES)")
        have = int(re.search(r"MESSAGES (\d+)", u[0]).group(1))
        c.close()
        if have < args.messages:
            print(f"filling INBOX: {have} -> {args.messages} messages", flush=True)
            t0 = time.monotonic()
            fill(t, args.messages - have)
            print(f"filled in {time.monotonic() - t0:.0f} s", flush=True)
        results = {"messages": args.messages, "runs": []}
        for run in range(args.runs):
            for compress in (False, True):
                r = sync(t, pid, compress)
                label = "COMPRESS on " if compress else "COMPRESS off"
                if r is None:
                    print(f"{label}: not advertised, skipped")
                    continue
                results["runs"].append({"compress": compress, **r})
                for ph, v in r.items():
                    print(f"{label} {ph:8s} {v['seconds']:8.3f} s  in {v['wire_in']:>12,} B  "
                          f"out {v['wire_out']:>10,} B  imapd CPU {v['imapd_cpu']:7.2f} s  "
                          f"client CPU {v['client_cpu']:7.2f} s", flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=1)
    finally:
        inst.stop_all()


if __name__ == "__main__":
    main()
