"""mailctl end to end: every verb, its output, its errors and exit codes
(0 ok, 1 failure with one line on stderr, 2 bad usage), the help texts,
password input (stdin and a real pseudo-terminal), quotas, local delivery and
reindex after the index is thrown away."""
import os
import pty
import select
import shutil
import ssl
import socket
import subprocess
import time

import pytest

from conftest import BIN, PASSWORD, client_tls_context

MAILCTL = os.path.join(BIN, "mailctl")
DEFAULT_MAILBOXES = ["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"]


def run(pr, *args, input=None, env=None):
    return pr.mailctl(*args, input=input, check=False)


def assert_fail(r, code=1, text=None):
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert lines and lines[0].startswith("mailctl: "), r.stderr
    if code == 1:
        assert len(lines) == 1, r.stderr   # one-line reason
    if text:
        assert text in r.stderr, r.stderr


def mailboxes(pr, addr):
    r = pr.mailctl("mailbox", "list", addr)
    out = {}
    for line in r.stdout.splitlines():
        name, msgs, unseen, size = line.rsplit(" ", 3)
        out[name] = (int(msgs), int(unseen), int(size))
    return out


def message(subject, body="hello\r\n"):
    return (f"From: a@example.org\r\nTo: b@example.test\r\n"
            f"Subject: {subject}\r\nMessage-ID: <{subject}@x>\r\n\r\n{body}")


def deliver(pr, addr, msg, mailbox=None):
    args = ["deliver", addr] + (["--mailbox", mailbox] if mailbox else [])
    return pr.mailctl(*args, input=msg)


# -- help and usage ----------------------------------------------------

def test_help(pr):
    r = subprocess.run([MAILCTL, "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    for verb in ["domain add DOMAIN", "domain del DOMAIN", "domain list",
                 "user add ADDRESS [--password-stdin] [--quota SIZE]",
                 "user passwd ADDRESS [--password-stdin]", "user del ADDRESS",
                 "user list [DOMAIN]", "user quota ADDRESS SIZE",
                 "alias add ALIAS TARGET[,TARGET...]", "alias del ALIAS",
                 "alias list", "mailbox list ADDRESS", "reindex ADDRESS"]:
        assert "mailctl " + verb in r.stdout, verb
    assert "-c FILE" in r.stdout
    # -h and "help" are the same; help needs no config file.
    assert subprocess.run([MAILCTL, "-h"], capture_output=True,
                          text=True).stdout == r.stdout
    assert subprocess.run([MAILCTL, "help"], capture_output=True,
                          text=True).stdout == r.stdout


@pytest.mark.parametrize("noun,verbs", [
    ("domain", ["add", "del", "list"]),
    ("user", ["add", "passwd", "del", "list", "quota"]),
    ("alias", ["add", "del", "list"]),
    ("mailbox", ["list"]),
    ("reindex", [""]),
])
def test_noun_help(pr, noun, verbs):
    for args in ([noun, "--help"], ["help", noun], [noun, "-h"]):
        r = subprocess.run([MAILCTL, *args], capture_output=True, text=True)
        assert r.returncode == 0, (args, r.stderr)
        for v in verbs:
            assert f"mailctl {noun} {v}".strip() in r.stdout
        # Only this noun's verbs.
        other = "alias add" if noun != "alias" else "domain add"
        assert other not in r.stdout
    # --help after a verb shows the noun's help too.
    if verbs[0]:
        r = subprocess.run([MAILCTL, noun, verbs[0], "--help"],
                           capture_output=True, text=True)
        assert r.returncode == 0 and f"mailctl {noun} {verbs[0]}" in r.stdout


@pytest.mark.parametrize("args,text", [
    ([], "missing command"),
    (["frobnicate"], "unknown command 'frobnicate'"),
    (["user"], "missing verb"),
    (["user", "frob"], "unknown verb 'user frob'"),
    (["user", "add"], "missing argument"),
    (["user", "add", "a@example.test", "b@example.test"], "too many arguments"),
    (["user", "add", "a@example.test", "--bogus"], "unknown option '--bogus'"),
    (["user", "add", "a@example.test", "--quota"], "--quota needs a SIZE"),
    (["user", "add", "a@example.test", "--quota", "12Q"], "bad SIZE '12Q'"),
    (["user", "quota", "a@example.test", "lots"], "bad SIZE 'lots'"),
    (["user", "del", "a@example.test", "--password-stdin"], "unknown option"),
    (["domain", "list", "extra"], "too many arguments"),
    (["alias", "add", "x@example.test"], "missing argument"),
    (["mailbox", "list"], "missing argument"),
    (["reindex"], "missing argument"),
    (["--bogus"], "unknown option '--bogus'"),
])
def test_usage_errors(pr, args, text):
    r = run(pr, *args)
    assert_fail(r, 2, text)
    assert r.stdout == ""


def test_config_errors(pr, tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text("hostname = x\nfrobnicate = 1\n")
    r = subprocess.run([MAILCTL, "-c", str(bad), "domain", "list"],
                       capture_output=True, text=True)
    assert_fail(r, 1, f"{bad}:2: unknown key 'frobnicate'")
    r = subprocess.run([MAILCTL, "-c", str(tmp_path / "none.conf"), "domain",
                        "list"], capture_output=True, text=True)
    assert_fail(r, 1, "No such file")
    r = subprocess.run([MAILCTL, "-c"], capture_output=True, text=True)
    assert_fail(r, 2, "-c needs a FILE")


def test_config_from_env(pr):
    pr.mailctl("domain", "add", "env.test")
    env = dict(os.environ, POSTROOM_CONF=pr.conf)
    r = subprocess.run([MAILCTL, "domain", "list"], capture_output=True,
                       text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["env.test"]
    # -c wins over the environment.
    env["POSTROOM_CONF"] = "/nonexistent/postroom.conf"
    r = subprocess.run([MAILCTL, "-c", pr.conf, "domain", "list"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0 and r.stdout.split() == ["env.test"]
    r = subprocess.run([MAILCTL, "domain", "list"], capture_output=True,
                       text=True, env=env)
    assert_fail(r, 1, "/nonexistent/postroom.conf")


# -- domains -----------------------------------------------------------

def test_domains(pr):
    assert pr.mailctl("domain", "list").stdout == ""
    pr.mailctl("domain", "add", "example.test")
    pr.mailctl("domain", "add", "Other.TEST")    # stored lowercase
    assert sorted(pr.mailctl("domain", "list").stdout.split()) == \
        ["example.test", "other.test"]
    assert_fail(run(pr, "domain", "add", "example.test"), 1, "already exists")
    assert_fail(run(pr, "domain", "add", "bad..domain"), 1, "invalid domain")
    assert_fail(run(pr, "domain", "add", "a b"), 1, "invalid domain")
    assert_fail(run(pr, "domain", "del", "nope.test"), 1, "no such domain")
    pr.mailctl("domain", "del", "other.test")
    assert pr.mailctl("domain", "list").stdout.split() == ["example.test"]


def test_domain_del_with_users(pr):
    pr.add_user("alice@example.test")
    assert_fail(run(pr, "domain", "del", "example.test"), 1, "users or aliases")
    pr.mailctl("user", "del", "alice@example.test")
    pr.mailctl("domain", "del", "example.test")
    assert pr.mailctl("domain", "list").stdout == ""


# -- users -------------------------------------------------------------

def test_user_add_list_del(pr):
    pr.mailctl("domain", "add", "example.test")
    pr.mailctl("domain", "add", "other.test")
    pr.mailctl("user", "add", "Alice@Example.Test", "--password-stdin",
               input="pw-alice\n")
    pr.mailctl("user", "add", "--password-stdin", "bob@example.test",
               input="pw-bob")                   # no newline at EOF is fine
    pr.mailctl("user", "add", "carol@other.test", "--password-stdin",
               input="pw-carol\r\n")
    assert sorted(pr.mailctl("user", "list").stdout.split()) == \
        ["alice@example.test", "bob@example.test", "carol@other.test"]
    assert sorted(pr.mailctl("user", "list", "example.test").stdout.split()) == \
        ["alice@example.test", "bob@example.test"]
    assert pr.mailctl("user", "list", "other.test").stdout.split() == \
        ["carol@other.test"]
    assert_fail(run(pr, "user", "list", "nope.test"), 1, "no such domain")
    # New users have the six standard mailboxes, empty.
    mbs = mailboxes(pr, "alice@example.test")
    assert sorted(mbs) == DEFAULT_MAILBOXES
    assert all(v == (0, 0, 0) for v in mbs.values())
    maildir = os.path.join(pr.data_dir, "mail", "example.test", "alice")
    assert os.path.isdir(maildir)
    pr.mailctl("user", "del", "alice@example.test")
    assert not os.path.exists(maildir)
    assert sorted(pr.mailctl("user", "list").stdout.split()) == \
        ["bob@example.test", "carol@other.test"]
    assert_fail(run(pr, "user", "del", "alice@example.test"), 1, "no such user")
    assert_fail(run(pr, "mailbox", "list", "alice@example.test"), 1,
                "no such user")


def test_user_add_errors(pr):
    pr.mailctl("domain", "add", "example.test")
    pr.add_user("alice@example.test")
    r = run(pr, "user", "add", "x@elsewhere.test", "--password-stdin",
            input="pw\n")
    assert_fail(r, 1, "domain 'elsewhere.test' is not local")
    assert "mailctl domain add elsewhere.test" in r.stderr
    assert_fail(run(pr, "user", "add", "alice@example.test",
                    "--password-stdin", input="pw\n"), 1, "already exists")
    assert_fail(run(pr, "user", "add", "ALICE@example.test",
                    "--password-stdin", input="pw\n"), 1, "already exists")
    for bad in ["noat", "@example.test", "a@", "a b@example.test",
                "a@@example.test"]:
        assert_fail(run(pr, "user", "add", bad, "--password-stdin",
                        input="pw\n"), 1, "invalid address")
    for bad in ["a+tag@example.test", ".dot@example.test"]:
        assert_fail(run(pr, "user", "add", bad, "--password-stdin",
                        input="pw\n"), 1, "invalid")
    assert_fail(run(pr, "user", "add", "a+tag@example.test",
                    "--password-stdin", input="pw\n"), 1,
                "invalid user name 'a+tag'")
    assert_fail(run(pr, "user", "add", "e@example.test", "--password-stdin",
                    input="\n"), 1, "empty password")
    assert_fail(run(pr, "user", "add", "e@example.test", "--password-stdin",
                    input=""), 1, "no password")
    assert_fail(run(pr, "user", "add", "e@example.test", "--password-stdin",
                    input="x" * 5000 + "\n"), 1, "password")
    # The failed attempts created nothing.
    assert pr.mailctl("user", "list").stdout.split() == ["alice@example.test"]


def test_user_add_refuses_without_terminal(pr):
    pr.mailctl("domain", "add", "example.test")
    r = subprocess.run([MAILCTL, "-c", pr.conf, "user", "add",
                        "t@example.test"], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True)
    assert_fail(r, 2, "--password-stdin")
    r = subprocess.run([MAILCTL, "-c", pr.conf, "user", "add",
                        "t@example.test"], input="pw\n",
                       capture_output=True, text=True)
    assert_fail(r, 2, "not a terminal")
    assert pr.mailctl("user", "list").stdout == ""


def _run_on_pty(pr, args, lines):
    """Runs mailctl with a pseudo-terminal as stdin, answering each prompt
    that appears on stderr with the next line; returns (rc, stderr, what the
    terminal echoed)."""
    master, slave = pty.openpty()
    p = subprocess.Popen([MAILCTL, "-c", pr.conf, *args], stdin=slave,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.close(slave)
    err, echoed = b"", b""
    answered = 0
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([p.stderr, master], [], [], 0.2)
            if p.stderr in r:
                chunk = os.read(p.stderr.fileno(), 4096)
                if not chunk:
                    break
                err += chunk
            if master in r:
                try:
                    echoed += os.read(master, 4096)
                except OSError:
                    pass
            if answered < len(lines) and err.count(b"password: ") > answered:
                os.write(master, lines[answered].encode() + b"\n")
                answered += 1
        rc = p.wait(timeout=30)
    finally:
        os.close(master)
        if p.poll() is None:
            p.kill()
            p.wait()
    return rc, err.decode(errors="replace"), echoed


def test_password_prompt_on_terminal(pr):
    pr.mailctl("domain", "add", "example.test")
    rc, err, echoed = _run_on_pty(pr, ["user", "add", "tty@example.test"],
                                  ["Tty-Secret-1", "Tty-Secret-1"])
    assert rc == 0, err
    assert "New password: " in err and "Retype new password: " in err
    assert b"Tty-Secret-1" not in echoed      # typed without echo
    assert "tty@example.test" in pr.mailctl("user", "list").stdout
    # Mismatch: refused, nothing changed.
    rc, err, echoed = _run_on_pty(pr, ["user", "add", "tty2@example.test"],
                                  ["one-password", "another-one"])
    assert rc == 1 and "do not match" in err
    assert "tty2@example.test" not in pr.mailctl("user", "list").stdout
    rc, err, _ = _run_on_pty(pr, ["user", "passwd", "tty@example.test"],
                             ["Tty-Secret-2", "Tty-Secret-2"])
    assert rc == 0, err


def _pop3_login(pr, user, password):
    """True if pop3d (POP3S) accepts the password."""
    s = pr.connect("pop3s", tls=True)
    f = s.makefile("rwb")
    try:
        assert f.readline().startswith(b"+OK")
        f.write(f"USER {user}\r\n".encode()); f.flush()
        f.readline()
        f.write(f"PASS {password}\r\n".encode()); f.flush()
        ok = f.readline().startswith(b"+OK")
        f.write(b"QUIT\r\n"); f.flush()
        f.readline()
        return ok
    finally:
        f.close()
        s.close()


def test_user_passwd(pr):
    pr.add_user("alice@example.test", password="first-Pass1")
    pr.mailctl("user", "passwd", "alice@example.test", "--password-stdin",
               input="second-Pass2\n")
    assert_fail(run(pr, "user", "passwd", "nobody@example.test",
                    "--password-stdin", input="x\n"), 1, "no such user")
    assert_fail(run(pr, "user", "passwd", "alice@example.test",
                    "--password-stdin", input="\n"), 1, "empty password")
    if not os.path.exists(os.path.join(BIN, "pop3d")):
        pytest.skip("pop3d not built: password checked only by exit codes")
    pr.start("pop3d")
    assert _pop3_login(pr, "alice@example.test", "second-Pass2")
    assert not _pop3_login(pr, "alice@example.test", "first-Pass1")


def test_quota(pr):
    pr.mailctl("domain", "add", "example.test")
    pr.mailctl("user", "add", "q@example.test", "--password-stdin",
               "--quota", "10M", input="pw\n")
    assert "quota 10485760" in pr.mailctl("user", "show", "q@example.test").stdout
    pr.mailctl("user", "add", "r@example.test", "--password-stdin",
               "--quota=2K", input="pw\n")
    assert "quota 2048" in pr.mailctl("user", "show", "r@example.test").stdout
    pr.mailctl("user", "add", "u@example.test", "--password-stdin",
               input="pw\n")
    assert "quota 0" in pr.mailctl("user", "show", "u@example.test").stdout
    for size, want in [("1G", 1 << 30), ("512K", 512 << 10), ("12345", 12345),
                       ("0", 0)]:
        pr.mailctl("user", "quota", "u@example.test", size)
        assert f"quota {want}\n" in pr.mailctl("user", "show",
                                                "u@example.test").stdout
    assert_fail(run(pr, "user", "quota", "none@example.test", "1M"), 1,
                "no such user")
    # The quota is enforced on delivery.
    deliver(pr, "r@example.test", message("small"))
    r = run(pr, "deliver", "r@example.test", input=message("big", "x" * 4096))
    assert_fail(r, 1, "quota")
    assert mailboxes(pr, "r@example.test")["INBOX"][0] == 1


# -- aliases -----------------------------------------------------------

def test_aliases(pr):
    pr.add_user("alice@example.test")
    pr.add_user("bob@example.test")
    assert pr.mailctl("alias", "list").stdout == ""
    pr.mailctl("alias", "add", "Sales@example.test",
               "alice@example.test, BOB@example.test")
    pr.mailctl("alias", "add", "info@example.test", "sales@example.test")
    lines = sorted(pr.mailctl("alias", "list").stdout.splitlines())
    assert lines == ["info@example.test sales@example.test",
                     "sales@example.test alice@example.test,bob@example.test"]
    assert_fail(run(pr, "alias", "add", "sales@example.test",
                    "bob@example.test"), 1, "already a user or an alias")
    assert_fail(run(pr, "alias", "add", "alice@example.test",
                    "bob@example.test"), 1, "already a user or an alias")
    assert_fail(run(pr, "alias", "add", "x@elsewhere.test",
                    "bob@example.test"), 1, "not local")
    assert_fail(run(pr, "alias", "add", "y@example.test", "not an address"),
                1, "invalid address")
    assert_fail(run(pr, "alias", "add", "y@example.test", ","), 2,
                "no TARGET")
    assert_fail(run(pr, "alias", "add", "y@example.test",
                    "alice@example.test,tpyo@example.test"), 1,
                "target 'tpyo@example.test' is not a user or alias")
    # A target outside the local domains is accepted: forwarded through the
    # outbound queue with an SRS sender.
    pr.mailctl("alias", "add", "y@example.test", "X@Elsewhere.test")
    assert "y@example.test x@elsewhere.test" in pr.mailctl(
        "alias", "list").stdout.splitlines()
    pr.mailctl("alias", "del", "y@example.test")
    # "user+tag" targets and aliases of aliases resolve.
    pr.mailctl("alias", "add", "z@example.test", "alice+lists@example.test")
    # An alias blocks creating a user of that name.
    assert_fail(run(pr, "user", "add", "info@example.test",
                    "--password-stdin", input="pw\n"), 1, "alias")
    pr.mailctl("alias", "del", "info@example.test")
    assert_fail(run(pr, "alias", "del", "info@example.test"), 1,
                "no such alias")
    pr.mailctl("alias", "del", "z@example.test")
    assert pr.mailctl("alias", "list").stdout.splitlines() == \
        ["sales@example.test alice@example.test,bob@example.test"]


# -- delivery, mailbox list, reindex ------------------------------------

def test_deliver_and_mailbox_list(pr):
    pr.add_user("alice@example.test")
    m1, m2 = message("one"), message("two", "line\nbare lf\n")
    deliver(pr, "alice@example.test", m1)
    deliver(pr, "Alice@example.test", m2)
    deliver(pr, "alice@example.test", message("draft"), mailbox="Drafts")
    mbs = mailboxes(pr, "alice@example.test")
    # Sizes are of the stored message, CRLF line ends.
    size2 = len(m2.replace("\r\n", "\n").replace("\n", "\r\n"))
    assert mbs["INBOX"] == (2, 2, len(m1) + size2)
    assert mbs["Drafts"][0:2] == (1, 1)
    assert mbs["Sent"] == (0, 0, 0)
    assert len(pr.maildir_files("alice@example.test")) == 3
    assert_fail(run(pr, "deliver", "alice@example.test", "--mailbox", "Nope",
                    input=m1), 1, "no mailbox 'Nope'")
    assert_fail(run(pr, "deliver", "nobody@example.test", input=m1), 1,
                "no such user")
    assert_fail(run(pr, "deliver", "alice@example.test", input=""), 1,
                "empty message")


def test_deliver_size_limit(pr):
    pr.write_config(max_message_size="1K")
    pr.add_user("alice@example.test")
    assert_fail(run(pr, "deliver", "alice@example.test",
                    input=message("big", "y" * 2000)), 1, "max_message_size")
    assert mailboxes(pr, "alice@example.test")["INBOX"] == (0, 0, 0)


def test_reindex_after_losing_the_index(pr):
    pr.add_user("alice@example.test")
    pr.add_user("bob@example.test")
    for i in range(5):
        deliver(pr, "alice@example.test", message(f"in{i}"))
    deliver(pr, "alice@example.test", message("sent"), mailbox="Sent")
    deliver(pr, "bob@example.test", message("bob"))
    before_a = mailboxes(pr, "alice@example.test")
    before_b = mailboxes(pr, "bob@example.test")
    # Reindex on an intact index changes nothing.
    r = pr.mailctl("reindex", "alice@example.test")
    assert "alice@example.test:" in r.stdout
    assert mailboxes(pr, "alice@example.test") == before_a

    shutil.rmtree(os.path.join(pr.data_dir, "index"))
    r = pr.mailctl("reindex", "alice@example.test")
    assert "6 messages" in r.stdout, r.stdout
    pr.mailctl("reindex", "bob@example.test")
    assert mailboxes(pr, "alice@example.test") == before_a
    assert mailboxes(pr, "bob@example.test") == before_b
    assert_fail(run(pr, "reindex", "nobody@example.test"), 1, "no such user")
    # The users work again: password intact (if pop3d is there) and new
    # deliveries get fresh UIDs.
    deliver(pr, "alice@example.test", message("after"))
    assert mailboxes(pr, "alice@example.test")["INBOX"][0] == 6
    if os.path.exists(os.path.join(BIN, "pop3d")):
        pr.start("pop3d")
        assert _pop3_login(pr, "alice@example.test", PASSWORD)
