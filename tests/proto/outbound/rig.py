"""The loopback rig for mtad: a DNS server for test zones (dnslib) on a free
port of 127.0.0.1, and SMTP sinks on 127.0.0.2, .3, .4 that share one port
(mtad's outbound_port) and answer as scripted per recipient. No internet.

Recipient scripts (by local part prefix): ok-* accept; temp-* 451 at RCPT on
the first try, then accept; reject-* 550 5.1.1 at RCPT; datafail-* 554 after
the data; dataclose-* the sink closes the connection in the middle of the
data on the first try, then accepts; hang-* the sink never answers the RCPT
on the first try, then accepts. Every accepted message is recorded with the
sink's address, the envelope, the parameters, TLS and the data.
"""
import os
import socket
import ssl
import subprocess
import tempfile
import threading
import time

from dnslib import QTYPE, RCODE, RR, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer


class Zones(BaseResolver):
    """Answers from a dict: (name, qtype) -> list of zone-file RR strings;
    names not in it get NXDOMAIN, known names without that type NODATA."""

    def __init__(self):
        self.records = {}
        self.lock = threading.Lock()

    def add(self, zone_line):
        rr = RR.fromZone(zone_line)[0]
        key = (str(rr.rname).lower().rstrip("."), QTYPE[rr.rtype])
        with self.lock:
            self.records.setdefault(key, []).append(rr)

    def resolve(self, request, handler):
        reply = request.reply()
        q = request.q
        name = str(q.qname).lower().rstrip(".")
        with self.lock:
            rrs = self.records.get((name, QTYPE[q.qtype]), [])
            known = any(k[0] == name for k in self.records)
        for rr in rrs:
            reply.add_answer(rr)
        if not rrs and not known:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


class DNS:
    def __init__(self, port):
        self.zones = Zones()
        self.port = port
        quiet = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data",
                          prefix=False)
        self.server = DNSServer(self.zones, port=port, address="127.0.0.1", logger=quiet)
        self.server.start_thread()

    def mx(self, domain, *hosts):
        """hosts: (pref, name, [addresses]); an empty name makes a null MX."""
        for pref, name, addrs in hosts:
            self.zones.add(f"{domain}. 60 IN MX {pref} {name or '.'}.".replace("..", "."))
            for a in addrs:
                self.zones.add(f"{name}. 60 IN {'AAAA' if ':' in a else 'A'} {a}")

    def a(self, name, addr):
        self.zones.add(f"{name}. 60 IN A {addr}")

    def stop(self):
        self.server.stop()


class Sink:
    """One SMTP sink on (ip, port). Options: name (greeting and EHLO name),
    starttls (a (cert, key) pair), require_auth ((user, password), needs
    TLS first), dsn, pipelining, eightbit, smtputf8, size, delay (seconds
    before each reply to the data, for slow-sink tests), greeting (a whole
    greeting line instead of 220, e.g. "554 5.7.1 go away"), refuse_helo (a
    reply line to both EHLO and HELO), close_after (close the connection
    without a word after that many accepted transactions)."""

    def __init__(self, rig, ip, port, name=None, starttls=None, require_auth=None,
                 dsn=True, pipelining=True, eightbit=True, smtputf8=False,
                 size=None, delay=0.0, hostile=None, greeting=None, refuse_helo=None,
                 close_after=None):
        self.rig, self.ip, self.port = rig, ip, port
        self.name = name or f"sink-{ip}.test"
        self.starttls, self.require_auth = starttls, require_auth
        self.dsn, self.pipelining, self.eightbit = dsn, pipelining, eightbit
        self.smtputf8, self.size, self.delay = smtputf8, size, delay
        self.hostile = hostile      # None, "longline", "manylines", "junk"
        self.greeting, self.refuse_helo = greeting, refuse_helo
        self.close_after = close_after
        self.sock = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, port))
        self.sock.listen(64)
        self.stopping = False
        self.connections = 0
        self.active = self.max_active = 0   # sessions open at once
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.accept_loop, daemon=True)
        self.thread.start()

    def accept_loop(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self.session, args=(c,), daemon=True).start()

    def stop(self):
        self.stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    # -- one session ----------------------------------------------------
    def session(self, c):
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            self._session(c)
        except (OSError, ssl.SSLError, ValueError):
            pass
        finally:
            with self.lock:
                self.active -= 1
            try:
                c.close()
            except OSError:
                pass

    def _session(self, c):
        f = c.makefile("rb")
        tls = None
        authed = self.require_auth is None

        def send(line):
            c.sendall(line.encode() + b"\r\n")

        def readline():
            ln = f.readline(4096)
            if not ln:
                raise ValueError("closed")
            return ln.rstrip(b"\r\n").decode("utf-8", "replace")

        if self.greeting:
            self.rig.note("greeting", self.ip, self.greeting)
            send(self.greeting)
            while True:         # RFC 5321 3.1: wait for QUIT
                if readline().upper().startswith("QUIT"):
                    send("221 2.0.0 bye")
                    return
                send("503 5.5.1 no service")
        send(f"220 {self.name} ESMTP sink")
        mail, rcpts, params = None, [], {}
        done_here = 0
        while True:
            line = readline()
            verb = line.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO") and self.refuse_helo:
                self.rig.note("helo-refused", self.ip, line)
                send(self.refuse_helo)
                continue
            if verb in ("EHLO", "HELO") and self.hostile:
                self.rig.note("hostile", self.ip, self.hostile)
                if self.hostile == "longline":
                    c.sendall(b"250-" + b"x" * 100000 + b"\r\n")
                elif self.hostile == "manylines":
                    c.sendall(b"250-more\r\n" * 5000)
                else:
                    c.sendall(b"\x00\xff garbage \x1b[31m\r\n")
                readline()
                return
            if verb in ("EHLO", "HELO"):
                self.rig.note("ehlo", self.ip, line)
                caps = [self.name]
                if self.pipelining:
                    caps.append("PIPELINING")
                if self.size:
                    caps.append(f"SIZE {self.size}")
                if self.eightbit:
                    caps.append("8BITMIME")
                if self.smtputf8:
                    caps.append("SMTPUTF8")
                if self.dsn:
                    caps.append("DSN")
                caps.append("ENHANCEDSTATUSCODES")
                if self.starttls and tls is None:
                    caps.append("STARTTLS")
                if self.require_auth and tls is not None:
                    caps.append("AUTH PLAIN LOGIN")
                for cap in caps[:-1]:
                    send("250-" + cap)
                send("250 " + caps[-1])
            elif verb == "STARTTLS" and self.starttls == "broken":
                send("220 2.0.0 go ahead")
                c.sendall(b"this is not a TLS server hello\r\n" * 4)
                self.rig.note("tls-broken", self.ip, "")
                return
            elif verb == "STARTTLS" and self.starttls and tls is None:
                send("220 2.0.0 go ahead")
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.load_cert_chain(*self.starttls)
                c = ctx.wrap_socket(c, server_side=True)
                tls = c.version()
                f = c.makefile("rb")
            elif verb == "AUTH":
                if tls is None:
                    send("538 5.7.11 encryption required")
                    continue
                import base64
                parts = line.split()
                if len(parts) >= 2 and parts[1].upper() == "PLAIN":
                    resp = parts[2] if len(parts) > 2 else (send("334 ") or readline())
                    z = base64.b64decode(resp).split(b"\0")
                    ok = (z[1].decode(), z[2].decode()) == self.require_auth
                elif len(parts) >= 2 and parts[1].upper() == "LOGIN":
                    send("334 VXNlcm5hbWU6")
                    u = base64.b64decode(readline()).decode()
                    send("334 UGFzc3dvcmQ6")
                    p = base64.b64decode(readline()).decode()
                    ok = (u, p) == self.require_auth
                else:
                    ok = False
                self.rig.note("auth", self.ip, "ok" if ok else "bad")
                if ok:
                    authed = True
                    send("235 2.7.0 authenticated")
                else:
                    send("535 5.7.8 bad credentials")
            elif verb == "MAIL":
                if not authed:
                    send("530 5.7.0 authentication required")
                    continue
                mail, rcpts = line[10:], []
                params = {"mail": line}
                send("250 2.1.0 ok")
            elif verb == "RCPT":
                addr = line[line.index("<") + 1:line.index(">")]
                local = addr.split("@")[0]
                first = self.rig.first_time(addr)
                params.setdefault("rcpt", []).append(line)
                if local.startswith("reject-"):
                    send("550 5.1.1 no such user here")
                elif local.startswith("temp-") and first:
                    send("451 4.3.0 try again later")
                elif local.startswith("hang-") and first:
                    self.rig.note("hanging", self.ip, addr)
                    time.sleep(3600)
                else:
                    rcpts.append(addr)
                    send("250 2.1.5 ok")
            elif verb == "DATA":
                if not rcpts:
                    send("554 5.5.1 no valid recipients")
                    continue
                send("354 go ahead")
                data = []
                while True:
                    ln = f.readline(1 << 20)
                    if not ln:
                        raise ValueError("closed in data")
                    if ln in (b".\r\n", b".\n"):
                        break
                    if ln.startswith(b".."):
                        ln = ln[1:]
                    data.append(ln)
                    if (any(r.split("@")[0].startswith("dataclose-") for r in rcpts)
                            and len(data) == 2 and self.rig.first_time("close:" + rcpts[0])):
                        c.close()
                        raise ValueError("closed on purpose")
                if self.delay:
                    time.sleep(self.delay)
                if any(r.split("@")[0].startswith("datafail-") for r in rcpts):
                    send("554 5.6.0 content rejected")
                    continue
                params["connections"] = self.connections    # accepted so far
                self.rig.record(self.ip, mail, rcpts, b"".join(data), tls, params)
                send("250 2.0.0 queued as sink")
                done_here += 1
                if self.close_after and done_here >= self.close_after:
                    self.rig.note("closed-after", self.ip, str(done_here))
                    return
            elif verb == "RSET":
                mail, rcpts = None, []
                send("250 2.0.0 ok")
            elif verb == "NOOP":
                send("250 2.0.0 ok")
            elif verb == "QUIT":
                send("221 2.0.0 bye")
                return
            else:
                send("502 5.5.2 unknown command")


class Rig:
    def __init__(self, dns_port, smtp_port):
        self.dns = DNS(dns_port)
        self.port = smtp_port
        self.sinks = {}
        self.deliveries = []
        self.notes = []
        self.seen = set()
        self.lock = threading.Condition()

    def sink(self, ip, **kw):
        s = Sink(self, ip, self.port, **kw)
        self.sinks[ip] = s
        return s

    def first_time(self, key):
        with self.lock:
            if key in self.seen:
                return False
            self.seen.add(key)
            return True

    def note(self, what, ip, text):
        with self.lock:
            self.notes.append((what, ip, text))

    def record(self, ip, mail, rcpts, data, tls, params):
        with self.lock:
            self.deliveries.append({"ip": ip, "from": mail, "rcpts": rcpts,
                                    "data": data, "tls": tls, "params": params})
            self.lock.notify_all()

    def wait(self, pred, timeout=60, what="condition"):
        """Waits for pred(deliveries) to hold (bounded only to never hang)."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while not pred(self.deliveries):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {what}: "
                                         f"{[(d['ip'], d['rcpts']) for d in self.deliveries]}")
                self.lock.wait(min(left, 0.5))

    def stop(self):
        for s in self.sinks.values():
            s.stop()
        self.dns.stop()


def make_ca(dirpath, names):
    """A private CA and a server certificate for names (signed by it)."""
    ca_key, ca_crt = os.path.join(dirpath, "ca.key"), os.path.join(dirpath, "ca.pem")
    key, csr, crt = (os.path.join(dirpath, n) for n in ("srv.key", "srv.csr", "srv.pem"))
    ext = os.path.join(dirpath, "ext.cnf")
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key,
        "-out", ca_crt, "-days", "2", "-subj", "/CN=Postroom Test CA")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
        "-subj", f"/CN={names[0]}")
    with open(ext, "w") as fh:
        fh.write("subjectAltName=" + ",".join(f"DNS:{n}" for n in names) + "\n")
    run("openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key,
        "-CAcreateserial", "-out", crt, "-days", "2", "-extfile", ext)
    return ca_crt, crt, key
