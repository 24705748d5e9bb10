#!/usr/bin/env python3
"""Memory per idle connection of common/conn (plain and implicit TLS).

Starts bench/conn_mem (a greeting-only daemon on libcommon), opens N
connections, reads each greeting, and asks the daemon for its heap in use
(mallinfo2) and RSS before and after, then again after conn_trim() on every
connection (what imapd does when a session enters IDLE).
Usage: conn_mem.py BINARY CERT KEY [N]
"""
import socket
import ssl
import subprocess
import sys
import zlib


def stats(ctrl):
    ctrl.sendall(b"STATS\r\n")
    line = ctrl.makefile("rb").readline().decode()
    parts = dict(kv.split("=") for kv in line.split()[1:])
    return {k: int(v) for k, v in parts.items()}


def trim(ctrl):
    ctrl.sendall(b"TRIM\r\n")
    assert ctrl.makefile("rb").readline().startswith(b"TRIMMED")


def readline(s):
    buf = b""
    while not buf.endswith(b"\r\n"):
        buf += s.recv(1)
    return buf


def compress(s):
    """COMPRESS=DEFLATE as Thunderbird does after login, then one
    compressed command and its compressed reply."""
    s.sendall(b"COMPRESS\r\n")
    assert readline(s).startswith(b"OK")
    co = zlib.compressobj(6, zlib.DEFLATED, -15)
    do = zlib.decompressobj(-15)
    s.sendall(co.compress(b"NOOP\r\n") + co.flush(zlib.Z_SYNC_FLUSH))
    out = b""
    while not out.endswith(b"\r\n"):
        out += do.decompress(s.recv(100))
    assert out.startswith(b"OK noop"), out
    return (s, co, do)


def measure(ctrl, port, n, tls, z=False):
    ctx = None
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    base = stats(ctrl)
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        if ctx:
            s = ctx.wrap_socket(s)
        readline(s)
        socks.append(compress(s) if z else s)
    after = stats(ctrl)
    trim(ctrl)
    trimmed = stats(ctrl)
    for s in socks:
        (s[0] if z else s).close()
    name = ("tls" if tls else "plain") + ("+deflate" if z else "")
    d = lambda a, k: (a[k] - base[k]) / n
    print(f"{name:12} n={n}: heap/conn={d(after, 'heap'):.0f} B "
          f"rss/conn={d(after, 'rss') * 1024:.0f} B | after conn_trim: "
          f"heap/conn={d(trimmed, 'heap'):.0f} B "
          f"rss/conn={d(trimmed, 'rss') * 1024:.0f} B")
    # let the daemon see the closes before the next round
    while stats(ctrl)["conns"] > 1:
        pass


def main():
    binary, cert, key = sys.argv[1:4]
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 2000
    proc = subprocess.Popen([binary, cert, key], stdout=subprocess.PIPE)
    try:
        _, plain, tls = proc.stdout.readline().split()
        ctrl = socket.create_connection(("127.0.0.1", int(plain)))
        ctrl.recv(100)
        measure(ctrl, int(plain), n, False)
        measure(ctrl, int(tls), n, True)
        measure(ctrl, int(tls), n, True, z=True)
        ctrl.close()
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
