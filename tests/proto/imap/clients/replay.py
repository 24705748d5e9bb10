"""A small IMAP transcript driver for the client-replay suite (stdlib only).

A session file (sessions/*.imap) is a list of steps, one per line:

  # text                a comment; "# requires: CAP ..." lists capabilities the
                        session needs after login (absent -> the test is skipped);
                        "# conn: imaps|imap" picks implicit TLS (default) or plain
  C: line               a client line, sent with CRLF. ${var} and %{data} /
                        %#{data} (its length) are substituted.
  C+: text              glued to the previous C: with CRLF and sent in the same
                        write (LITERAL+ data, pipelining)
  S: glob               an expected server line. '*' matches anything (also
                        across literal data), matching is case-insensitive, and
                        ${name} captures an atom the first time and must repeat
                        it afterwards. The first token decides the kind:
                        '*' untagged, '+' continuation, else the tagged reply.
  S~: regex             the same with a Python regex (named groups are captured)
  S!: glob              must NOT appear among the untagged lines of this reply
  @directive args       an action: starttls, compress, deliver N [subject],
                        append MAILBOX [FLAGS], other COMMAND (run on a second,
                        logged-in session with INBOX selected), set NAME VALUE,
                        data NAME ... @end (a message; lines joined with CRLF),
                        if CAP... / else / endif (by the post-login capabilities),
                        deliversize OCTETS [subject] (one message of that size),
                        reconnect (a fresh connection; the greeting is expected next)

After a C: line the S: lines up to the next C: or @ form one group. The driver
reads responses until the tagged reply of the current tag (or a '+' line, when the
group expects one). Listed untagged lines may arrive in any order before it;
unlisted untagged lines are allowed. A group with untagged patterns only (for
instance during IDLE) reads until every pattern has matched.
"""
import base64
import re
import socket
import ssl
import time
import zlib

from lib import message

READ_TIMEOUT = 60.0         # a bound for a loaded machine, not an expectation


class ReplayError(AssertionError):
    pass


class SkipSession(Exception):
    pass


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


# --------------------------------------------------------------------------
# A raw IMAP connection: bytes in, whole responses (with literals) out.

class ImapConn:
    def __init__(self, host, port, tls=False, timeout=READ_TIMEOUT):
        self.host = host
        self.sock = socket.create_connection((host, port), timeout=timeout)
        if tls:
            self.sock = tls_context().wrap_socket(self.sock,
                                                  server_hostname="mail.example.test")
        self.buf = b""
        self.inflater = None
        self.deflater = None
        self.wire_in = 0
        self.wire_out = 0
        self.log = []           # (direction, text) for error reports
        self.tagn = 0

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def next_tag(self):
        self.tagn += 1
        return f"x{self.tagn}"

    # -- raw I/O -----------------------------------------------------------
    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        self.log.append(("C", data.decode("latin-1")))
        if self.deflater:
            data = self.deflater.compress(data) + self.deflater.flush(zlib.Z_SYNC_FLUSH)
        self.wire_out += len(data)
        self.sock.sendall(data)

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("timed out")
        self.sock.settimeout(remaining)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.wire_in += len(chunk)
        if self.inflater:
            chunk = self.inflater.decompress(chunk)
        self.buf += chunk

    def read_line(self, timeout=READ_TIMEOUT):
        """One CRLF-terminated line, without the CRLF (bytes)."""
        deadline = time.monotonic() + timeout
        while b"\r\n" not in self.buf:
            self._fill(deadline)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_exact(self, n, timeout=READ_TIMEOUT):
        deadline = time.monotonic() + timeout
        while len(self.buf) < n:
            self._fill(deadline)
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_response(self, timeout=READ_TIMEOUT):
        """A whole response: literal data is inlined after its {n}\\r\\n.
        Returns bytes."""
        out = b""
        while True:
            line = self.read_line(timeout)
            out += line
            m = re.search(rb"\{(\d+)\}$", line)
            if not m:
                break
            out += b"\r\n" + self.read_exact(int(m.group(1)), timeout)
        self.log.append(("S", out.decode("latin-1")))
        return out

    # -- transitions --------------------------------------------------------
    def starttls(self):
        # bytes buffered before the handshake are the server's injection bug
        if self.buf:
            raise ReplayError(f"data after STARTTLS OK before TLS: {self.buf!r}")
        self.sock = tls_context().wrap_socket(self.sock,
                                              server_hostname="mail.example.test")

    def start_compress(self):
        self.inflater = zlib.decompressobj(-15)
        self.deflater = zlib.compressobj(6, zlib.DEFLATED, -15)
        # anything already buffered arrived after the OK, so it is compressed
        if self.buf:
            self.buf = self.inflater.decompress(self.buf)

    # -- convenience ------------------------------------------------------
    def command(self, line, timeout=READ_TIMEOUT):
        """Sends 'TAG line' and returns (untagged list, tagged line), both str
        (latin-1 so len() counts octets)."""
        tag = self.next_tag()
        self.send(f"{tag} {line}\r\n")
        untagged = []
        while True:
            r = self.read_response(timeout).decode("latin-1")
            if r.startswith(tag + " "):
                return untagged, r
            untagged.append(r)

    def ok(self, line, timeout=READ_TIMEOUT):
        untagged, tagged = self.command(line, timeout)
        if tagged.split(" ", 2)[1].upper() != "OK":
            raise ReplayError(f"{line!r} -> {tagged!r}\n{self.transcript()}")
        return untagged, tagged

    def transcript(self, last=40):
        lines = []
        for d, t in self.log[-last:]:
            t = t if len(t) < 400 else t[:400] + f"...[{len(t)} octets]"
            lines.append(f"{d}: {t.rstrip()}")
        return "\n".join(lines)


def quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def capabilities(untagged, tagged=""):
    caps = set()
    for r in untagged:
        if r.upper().startswith("* CAPABILITY "):
            caps |= set(r.split()[2:])
    m = re.search(r"\[CAPABILITY ([^\]]*)\]", tagged, re.I)
    if m:
        caps |= set(m.group(1).split())
    return {c.upper() for c in caps}


# --------------------------------------------------------------------------
# Targets: what a session talks to (our daemons, or any IMAP server for a dry run)

def make_message(subject="test", body="hello\r\n", sender="sender@example.test",
                 to="user@example.test", size=None, msgid=None):
    """lib.message() with this suite's defaults: a plain-text MIME message
    with a Message-ID unique in time (the sessions may run against another
    server); size is the exact total in octets."""
    if msgid is None:
        msgid = f"<{time.time_ns()}.{subject.replace(' ', '.')}@example.test>"
    return message(subject, body, frm=f"Sender <{sender}>", to=to, msgid=msgid, size=size,
                   extra="MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n")


class Target:
    """host, ports and one user's credentials; deliver() puts mail in INBOX.
    smtp_port: deliver through SMTP (another process) when given, else APPEND."""

    def __init__(self, host, imap_port, imaps_port, user, password, smtp_port=None):
        self.host, self.imap_port, self.imaps_port = host, imap_port, imaps_port
        self.user, self.password, self.smtp_port = user, password, smtp_port

    def connect(self, tls=True):
        return ImapConn(self.host, self.imaps_port if tls else self.imap_port, tls)

    def login(self, select=None):
        c = self.connect(True)
        c.read_response()
        c.ok(f"LOGIN {quote(self.user)} {quote(self.password)}")
        if select:
            c.ok(f"SELECT {quote(select)}")
        return c

    def caps_after_login(self):
        c = self.connect(True)
        try:
            c.read_response()
            u, t = c.ok(f"LOGIN {quote(self.user)} {quote(self.password)}")
            u2, _ = c.ok("CAPABILITY")
            return capabilities(u2)
        finally:
            c.close()

    def append(self, mailbox, msg, flags=""):
        c = self.login()
        try:
            fl = f" ({flags})" if flags else ""
            c.send(f"a1 APPEND {quote(mailbox)}{fl} {{{len(msg)}}}\r\n")
            r = c.read_response().decode("latin-1")
            if not r.startswith("+"):
                raise ReplayError(f"APPEND refused: {r}")
            c.send(msg + b"\r\n")
            while True:
                r = c.read_response().decode("latin-1")
                if r.startswith("a1 "):
                    if " OK" not in r.upper():
                        raise ReplayError(f"APPEND failed: {r}")
                    return r
        finally:
            c.close()

    def deliver(self, msg):
        if self.smtp_port is None:
            return self.append("INBOX", msg)
        import smtplib
        with smtplib.SMTP(self.host, self.smtp_port, timeout=30) as s:
            s.ehlo("client.example.test")
            s.sendmail("sender@example.test", [self.user], msg)


# --------------------------------------------------------------------------
# Session files

class Step:
    def __init__(self, kind, text, lineno, arg=None):
        self.kind, self.text, self.lineno, self.arg = kind, text, lineno, arg

    def __repr__(self):
        return f"{self.lineno}: {self.kind} {self.text}"


def parse_session(text):
    """Returns (meta dict, list of Step, data dict)."""
    meta = {"requires": [], "conn": "imaps", "based_on": []}
    steps, data = [], {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        raw = lines[i]
        i += 1
        line = raw.rstrip("\n")
        s = line.strip()
        if not s:
            continue
        if s.startswith("#"):
            m = re.match(r"#\s*(requires|conn|based on)\s*:\s*(.*)", s, re.I)
            if m:
                key = m.group(1).lower().replace(" ", "_")
                if key == "requires":
                    meta["requires"] += m.group(2).upper().split()
                elif key == "conn":
                    meta["conn"] = m.group(2).strip().lower()
                else:
                    meta["based_on"].append(m.group(2))
            continue
        if s.startswith("@data "):
            name = s.split()[1]
            body = []
            while i < len(lines) and lines[i].strip() != "@end":
                body.append(lines[i])
                i += 1
            i += 1
            data[name] = ("\r\n".join(body) + "\r\n").encode()
            continue
        if s.startswith("@"):
            parts = s[1:].split(None, 1)
            steps.append(Step("@", parts[0].lower(), i, parts[1] if len(parts) > 1 else ""))
            continue
        m = re.match(r"(C\+|C|S~|S!|S):\s?(.*)$", line)
        if not m:
            raise ValueError(f"line {i}: cannot parse {line!r}")
        kind, rest = m.group(1), m.group(2)
        if kind == "C+":
            if not steps or steps[-1].kind != "C":
                raise ValueError(f"line {i}: C+ without a C before it")
            steps[-1].text += "\r\n" + rest
            continue
        steps.append(Step(kind, rest, i))
    return meta, steps, data


def _pattern_kind(text, is_regex):
    t = text.lstrip()
    if is_regex:
        if t.startswith("\\*") or t.startswith("[*]"):
            return "untagged"
        if t.startswith("\\+") or t.startswith("[+]"):
            return "cont"
        return "tagged"
    if t.startswith("* ") or t == "*":
        return "untagged"
    if t.startswith("+"):
        return "cont"
    return "tagged"


class AllOf:
    """fullmatch() of several patterns; returns an object with group()."""

    def __init__(self, pats):
        self.pats = pats

    def fullmatch(self, s):
        groups = {}
        for p in self.pats:
            m = p.fullmatch(s)
            if not m:
                return None
            groups.update({k: v for k, v in m.groupdict().items() if v is not None})
        return _Groups(groups)


class _Groups:
    def __init__(self, d):
        self.d = d

    def group(self, n):
        return self.d.get(n)


class Runner:
    def __init__(self, target, meta, steps, data, caps, name="session"):
        self.t, self.meta, self.steps, self.data = target, meta, steps, data
        self.caps = caps
        self.name = name
        self.vars = {
            "user": target.user, "pass": target.password,
            "quser": quote(target.user), "qpass": quote(target.password),
            "plain": base64.b64encode(
                b"\0" + target.user.encode() + b"\0" + target.password.encode()).decode(),
            "b64user": base64.b64encode(target.user.encode()).decode(),
            "b64pass": base64.b64encode(target.password.encode()).decode(),
        }
        self.conn = None
        self.other = None
        self.tag = None
        self.expect_cont_next = False

    # -- substitution and matching ----------------------------------------
    def subst_client(self, text, lineno):
        def data_len(m):
            return str(len(self.data[m.group(1)]))

        def var(m):
            if m.group(1) not in self.vars:
                raise ReplayError(f"{self.name}:{lineno}: ${{{m.group(1)}}} is not set")
            return self.vars[m.group(1)]
        text = re.sub(r"%#\{(\w+)\}", data_len, text)
        text = re.sub(r"\$\{(\w+)\}", var, text)
        out = b""
        pos = 0
        for m in re.finditer(r"%\{(\w+)\}", text):
            out += text[pos:m.start()].encode("utf-8")
            out += self.data[m.group(1)]
            pos = m.end()
        return out + text[pos:].encode("utf-8")

    def compile_pattern(self, text, is_regex):
        """Returns (matcher, list of variable names it captures). A glob with
        ' && ' in it matches a line only if every part does (any order of
        FETCH items, flags, LIST attributes)."""
        if not is_regex and " && " in text:
            parts = [self.compile_pattern(t, False) for t in text.split(" && ")]
            names = [n for _, caps in parts for n in caps]
            return AllOf([c for c, _ in parts]), names
        text = re.sub(r"%#\{(\w+)\}", lambda m: str(len(self.data[m.group(1)])), text)
        captures = []
        if is_regex:
            rx = re.sub(r"\$\{(\w+)\}",
                        lambda m: re.escape(self.vars[m.group(1)]) if m.group(1) in self.vars
                        else f"(?P<{m.group(1)}>[^\\s()\\[\\]]+)", text)
            cre = re.compile(rx, re.I | re.S)
            return cre, list(cre.groupindex)
        # the leading '*' of an untagged pattern is the literal marker
        out = re.escape("* ") if text.startswith("* ") else ""
        pos = start = 2 if out else 0
        for m in re.finditer(r"\$\{(\w+)\}|\*", text[pos:]):
            out += re.escape(text[pos:m.start() + start])
            if m.group(0) == "*":
                out += ".*"
            elif m.group(1) in self.vars:
                out += re.escape(self.vars[m.group(1)])
            elif m.group(1) in captures:
                out += f"(?P={m.group(1)})"
            else:
                captures.append(m.group(1))
                out += f"(?P<{m.group(1)}>[^\\s()\\[\\]]+)"
            pos = m.end() + start
        out += re.escape(text[pos:])
        return re.compile(out, re.I | re.S), captures

    def fail(self, step, msg):
        tr = self.conn.transcript() if self.conn else ""
        raise ReplayError(f"{self.name}:{step.lineno if step else '?'}: {msg}\n"
                          f"--- last exchange ---\n{tr}")

    # -- running ----------------------------------------------------------
    def run(self):
        missing = [c for c in self.meta["requires"] if c not in self.caps]
        if missing:
            raise SkipSession(f"server does not advertise {' '.join(missing)}")
        self.connect()
        try:
            self._run_steps(self._eval_ifs(self.steps))
        finally:
            if self.conn:
                self.conn.close()
            if self.other:
                self.other.close()

    def connect(self):
        if self.conn:
            self.conn.close()
        self.conn = self.t.connect(self.meta["conn"] != "imap")
        self.tag = None
        self.expect_cont_next = False

    def _eval_ifs(self, steps):
        out, stack = [], []
        for st in steps:
            if st.kind == "@" and st.text == "if":
                stack.append(all(c.upper() in self.caps for c in st.arg.split()))
                continue
            if st.kind == "@" and st.text == "else":
                stack[-1] = not stack[-1]
                continue
            if st.kind == "@" and st.text == "endif":
                stack.pop()
                continue
            if all(stack):
                out.append(st)
        if stack:
            raise ValueError(f"{self.name}: unbalanced @if")
        return out

    def _run_steps(self, steps):
        i = 0
        first = True
        while i < len(steps):
            st = steps[i]
            if st.kind == "C":
                self.send_client(st)
                i += 1
                first = False
            elif st.kind == "@":
                self.directive(st)
                if st.text == "reconnect":
                    first = True
                i += 1
            else:
                j = i
                while j < len(steps) and steps[j].kind in ("S", "S~", "S!"):
                    j += 1
                group = steps[i:j]
                if first:
                    self.expect_greeting(group)
                    first = False
                else:
                    self.expect_group(group)
                i = j

    def send_client(self, st):
        data = self.subst_client(st.text, st.lineno)
        if self.expect_cont_next:
            self.expect_cont_next = False
        else:
            tok = data.split(b" ", 1)[0].decode("latin-1")
            if tok.upper() != "DONE" and tok:
                self.tag = tok
        self.conn.send(data + b"\r\n")

    def expect_greeting(self, group):
        resp = self.conn.read_response().decode("latin-1")
        for st in group:
            cre, caps = self.compile_pattern(st.text, st.kind == "S~")
            m = cre.fullmatch(resp)
            if st.kind == "S!":
                if m:
                    self.fail(st, f"forbidden greeting {resp!r}")
                continue
            if not m:
                self.fail(st, f"greeting {resp!r} does not match {st.text!r}")
            self.bind(m, caps)

    def bind(self, m, names):
        for n in names:
            if m.group(n) is not None:
                self.vars[n] = m.group(n)

    def expect_group(self, group):
        """Pipelined commands: a group with several tagged lines is split after
        each; the tag of each part is the first token of its tagged pattern."""
        finals = [st for st in group if st.kind != "S!"
                  and _pattern_kind(st.text, st.kind == "S~") == "tagged"]
        if len(finals) <= 1:
            return self.expect_segment(group)
        seg = []
        for st in group:
            seg.append(st)
            if st in finals:
                self.tag = st.text.split(" ", 1)[0]
                self.expect_segment(seg)
                seg = []
        if seg:
            self.expect_segment(seg)

    def expect_segment(self, group):
        pats = []
        for st in group:
            cre, caps = self.compile_pattern(st.text, st.kind == "S~")
            kind = "forbid" if st.kind == "S!" else _pattern_kind(st.text, st.kind == "S~")
            pats.append((st, cre, caps, kind))
        untagged_p = [p for p in pats if p[3] == "untagged"]
        forbid_p = [p for p in pats if p[3] == "forbid"]
        final_p = [p for p in pats if p[3] in ("tagged", "cont")]
        if len(final_p) > 1:
            self.fail(group[0], "a group may end in one tagged or '+' line only")
        untagged = []
        final = None
        matched = {}
        while True:
            try:
                r = self.conn.read_response().decode("latin-1")
            except (socket.timeout, ConnectionError, OSError) as e:
                self.fail(group[0], f"{type(e).__name__} {e} while waiting for "
                          f"{[p[0].text for p in pats if p[3] != 'forbid']}")
            if r.startswith("+"):
                final = r
                break
            if self.tag and r.split(" ", 1)[0] == self.tag:
                final = r
                break
            if r.startswith("* "):
                untagged.append(r)
                for p in forbid_p:
                    if p[1].fullmatch(r):
                        self.fail(p[0], f"forbidden untagged response {r!r}")
                if not final_p:
                    # untagged-only group: stop once all patterns are seen
                    matched = self.match_untagged(untagged_p, untagged, partial=True)
                    if matched is not None:
                        break
                continue
            self.fail(group[0], f"unexpected response {r!r} (current tag {self.tag})")
        if final is not None:
            if not final_p:
                self.fail(group[0], f"unexpected {final!r}")
            st, cre, caps, kind = final_p[0]
            if kind == "cont" and not final.startswith("+"):
                self.fail(st, f"expected a continuation, got {final!r}")
            if kind == "tagged" and final.startswith("+"):
                self.fail(st, f"expected the tagged reply, got {final!r}")
            m = cre.fullmatch(final)
            if not m:
                self.fail(st, f"{final!r} does not match {st.text!r}")
            self.bind(m, caps)
            if kind == "cont":
                self.expect_cont_next = True
            matched = self.match_untagged(untagged_p, untagged, partial=False)
            while matched is None and kind == "cont":
                # after '+' (IDLE) the listed untagged lines may still come
                try:
                    r = self.conn.read_response().decode("latin-1")
                except (socket.timeout, ConnectionError, OSError):
                    break
                if not r.startswith("* "):
                    self.fail(st, f"unexpected {r!r} after the continuation")
                untagged.append(r)
                matched = self.match_untagged(untagged_p, untagged, partial=False)
            if matched is None:
                missing = self.missing_untagged(untagged_p, untagged)
                self.fail(missing[0], f"no untagged response matches {missing[0].text!r}; "
                          f"got {untagged!r}")
        for (cre_m, names) in matched.values():
            self.bind(cre_m, names)

    def match_untagged(self, pats, lines, partial):
        """Assigns each pattern a distinct line (backtracking). Returns
        {pattern index: (match, capture names)} or None."""
        cand = []
        for st, cre, caps, _ in pats:
            cand.append([(li, cre.fullmatch(l), caps) for li, l in enumerate(lines)
                         if cre.fullmatch(l)])
        order = sorted(range(len(pats)), key=lambda k: len(cand[k]))
        used, out = set(), {}

        def bt(n):
            if n == len(order):
                return True
            k = order[n]
            for li, m, caps in cand[k]:
                if li in used:
                    continue
                used.add(li)
                out[k] = (m, caps)
                if bt(n + 1):
                    return True
                used.discard(li)
                del out[k]
            return False
        return out if bt(0) else None

    def missing_untagged(self, pats, lines):
        return [st for st, cre, _, _ in pats if not any(cre.fullmatch(l) for l in lines)] \
            or [pats[0][0]]

    def directive(self, st):
        name, arg = st.text, st.arg
        if name == "starttls":
            self.conn.starttls()
        elif name == "compress":
            self.conn.start_compress()
        elif name == "reconnect":
            self.connect()
        elif name == "set":
            k, v = arg.split(None, 1)
            self.vars[k] = v
        elif name == "deliver":
            parts = arg.split(None, 1)
            n = int(parts[0]) if parts else 1
            subj = parts[1] if len(parts) > 1 else "delivered"
            for k in range(n):
                self.t.deliver(make_message(f"{subj} {k + 1}", to=self.t.user))
        elif name == "deliversize":
            parts = arg.split(None, 1)
            subj = parts[1] if len(parts) > 1 else "big"
            self.t.deliver(make_message(subj, to=self.t.user, size=int(parts[0])))
        elif name == "append":
            parts = arg.split(None, 1)
            box = parts[0]
            flags = parts[1].strip("()") if len(parts) > 1 else ""
            self.t.append(box, make_message(f"appended to {box}", to=self.t.user), flags)
        elif name == "other":
            if self.other is None:
                self.other = self.t.login(select="INBOX")
            cmd = self.subst_client(arg, st.lineno).decode()
            self.other.ok(cmd)
        else:
            raise ValueError(f"{self.name}:{st.lineno}: unknown directive @{name}")


def run_session_file(path, target, caps=None):
    with open(path, encoding="utf-8") as f:
        meta, steps, data = parse_session(f.read())
    if caps is None:
        caps = target.caps_after_login()
    r = Runner(target, meta, steps, data, caps, name=path.rsplit("/", 1)[-1])
    r.run()
    return r
