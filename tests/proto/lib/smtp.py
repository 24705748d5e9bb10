"""SMTP clients for the smtpd suites: a raw-socket SMTP client that reads
whole (multi-line) replies, the standard users, messages marked with a unique
token, and store inspection by that token."""
import base64
import time
import uuid

from .instance import PASSWORD, WRAP_SCALE, client_tls_context
from .lines import RawLine
from .mail import message

ALICE = "alice@example.test"
BOB = "bob@example.test"
CAROL = "carol@example.test"
TEAM = "team@example.test"      # alias -> alice, bob


def setup_users(inst):
    inst.add_user(ALICE)
    inst.add_user(BOB)
    inst.add_user(CAROL)
    inst.mailctl("alias", "add", TEAM, f"{ALICE},{BOB}")


def token():
    return uuid.uuid4().hex


def find(inst, address, tok):
    """Files in address's maildir whose content contains tok."""
    out = []
    for f in inst.maildir_files(address):
        with open(f, "rb") as fh:
            if tok.encode() in fh.read():
                out.append(f)
    return out


def wait_find(inst, address, tok, n=1, timeout=30):
    """find() until at least n files hold tok or timeout (a generous bound,
    scaled under a wrapper) passes."""
    deadline = time.time() + timeout * WRAP_SCALE
    while True:
        got = find(inst, address, tok)
        if len(got) >= n or time.time() > deadline:
            return got
        time.sleep(0.05)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def token_message(tok, frm=ALICE, to=BOB, body="Hello.\r\n", extra=""):
    """A message (str) whose Subject and Message-ID carry tok."""
    return message(f"test {tok}", body, frm=f"<{frm}>", to=f"<{to}>", extra=extra,
                   date=None, msgid=f"<{tok}@example.test>", text=True)


def plain_ir(user, password=PASSWORD):
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


class Raw(RawLine):
    """A line-level SMTP client over a plain or TLS socket."""

    @classmethod
    def connect(cls, inst, key, tls=False, timeout=10):
        r = cls(inst.connect(key, tls=tls, timeout=timeout))
        return r

    def line(self):
        return self.raw_line().decode("utf-8", "replace")

    def reply(self):
        """(code, [text lines]) of one complete reply."""
        lines = []
        while True:
            ln = self.line()
            lines.append(ln[4:])
            if len(ln) < 4 or ln[3] != "-":
                return int(ln[:3]), lines

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def expect(self, line, code):
        c, text = self.cmd(line)
        assert c == code, f"{line!r}: want {code}, got {c} {text}"
        return text

    def greeting(self):
        c, text = self.reply()
        assert c == 220, text
        return text

    def ehlo(self, name="client.test"):
        c, text = self.cmd(f"EHLO {name}")
        assert c == 250, text
        return [t.split()[0].upper() for t in text[1:]] + \
            [" ".join(t.split()).upper() for t in text[1:]]

    def starttls(self):
        self.expect("STARTTLS", 220)
        self.s = client_tls_context().wrap_socket(
            self.s, server_hostname="mail.example.test")
        self.buf = b""

    closed = RawLine.is_closed


def submission_session(inst, key="submission", user=ALICE):
    """A Raw client on submission (after STARTTLS) or smtps, logged in."""
    tls = key == "smtps"
    r = Raw.connect(inst, key, tls=tls)
    r.greeting()
    r.ehlo()
    if not tls:
        r.starttls()
        r.ehlo()
    r.expect(f"AUTH PLAIN {plain_ir(user)}", 235)
    return r


def send_raw(r, frm, rcpts, data, final=250):
    r.expect(f"MAIL FROM:<{frm}>", 250)
    for x in rcpts:
        r.expect(f"RCPT TO:<{x}>", 250)
    r.expect("DATA", 354)
    if isinstance(data, str):
        data = data.encode()
    r.send(data + b"\r\n.\r\n")
    c, text = r.reply()
    assert c == final, text
    return text
