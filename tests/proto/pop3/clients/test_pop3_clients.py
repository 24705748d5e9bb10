"""pop3d with real POP3 clients from Debian: curl (pop3s and pop3 with
STLS, SASL with and without initial response), fetchmail (keep + uidl, then
without keep) and getmail6."""
import os
import shutil
import stat
import subprocess
import tempfile

import pytest

from lib import PASSWORD, Instance, deliver
from lib.pop3 import Raw, need_smtpd, simple_msg


@pytest.fixture(scope="module")
def inst():
    need_smtpd()
    p = Instance()
    try:
        p.start("smtpd", "pop3d")
        yield p
    finally:
        p.stop_all()


def need(tool):
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (scripts/deps.sh test installs it)")


def curl(inst, url, *args):
    r = subprocess.run(["curl", "-sS", "--cacert", inst.cert, "--resolve",
                        "mail.example.test:%d:127.0.0.1" % inst.port("pop3s"),
                        "--resolve", "mail.example.test:%d:127.0.0.1" % inst.port("pop3"),
                        "-u", f"{inst.curl_user}:{PASSWORD}", *args, url],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    return r.stdout


def test_curl(inst):
    need("curl")
    user = inst.curl_user = "curl@example.test"
    inst.add_user(user)
    body = simple_msg(1, b".dot line\r\n..two dots\r\n")
    deliver(inst, user, body)
    deliver(inst, user, simple_msg(2))
    stored = []
    for fn in inst.maildir_files(user):     # before RETR renames them (\Seen)
        with open(fn, "rb") as f:
            stored.append(f.read())
    first, second = stored
    base = "pop3s://mail.example.test:%d/" % inst.port("pop3s")
    listing = curl(inst, base)
    assert listing.count(b"\r\n") == 2 and listing.startswith(b"1 ")
    got = curl(inst, base + "1")
    assert got in (first, second) and got.endswith(body)
    assert b"UIDL" not in curl(inst, base, "-X", "UIDL")
    assert curl(inst, base, "-X", "UIDL").count(b"\r\n") == 2
    top = curl(inst, base, "-X", "TOP 2 0")
    assert b"Subject: message 2" in top and b"Body of" not in top
    # SASL PLAIN with an initial response, and STLS on the plain port
    assert curl(inst, base + "2", "--sasl-ir").endswith(simple_msg(2))
    plain = "pop3://mail.example.test:%d/" % inst.port("pop3")
    assert curl(inst, plain + "2", "--ssl-reqd").endswith(simple_msg(2))
    assert curl(inst, plain + "2", "--ssl-reqd", "--login-options",
                "AUTH=LOGIN").endswith(simple_msg(2))
    # DELE through curl (-I: no transfer), then the message is gone
    curl(inst, base + "1", "-X", "DELE", "-I")
    assert curl(inst, base).count(b"\r\n") == 1


def fetchmail(inst, home, keep, port, stls=False):
    rc = os.path.join(home, "fetchmailrc")
    mbox = os.path.join(home, "out.mbox")
    with open(rc, "w") as f:
        f.write(f'poll 127.0.0.1 service {port} protocol POP3 uidl\n'
                f'  user "{inst.fm_user}" password "{PASSWORD}"\n'
                f'  {"sslproto tls1.2+" if stls else "ssl"} sslcertck\n'
                f'  sslcertfile "{inst.cert}"\n'
                f'  sslcommonname "mail.example.test"\n'
                f'  {"keep" if keep else "nokeep fetchall"}\n'
                f'  mda "/bin/sh -c \'cat >> {mbox}\'"\n')
    os.chmod(rc, stat.S_IRUSR | stat.S_IWUSR)
    env = dict(os.environ, HOME=home, FETCHMAILHOME=home)
    r = subprocess.run(["fetchmail", "-f", rc, "-v", "--nodetach", "--nosyslog"],
                       capture_output=True, text=True, timeout=120, env=env)
    text = ""
    if os.path.exists(mbox):
        with open(mbox, "rb") as f:
            text = f.read().decode("latin-1")
    return r.returncode, text, r.stdout + r.stderr


def test_fetchmail_keep_then_delete(inst):
    need("fetchmail")
    user = inst.fm_user = "fm@example.test"
    inst.add_user(user)
    for i in range(3):
        deliver(inst, user, simple_msg(i + 1))
    home = tempfile.mkdtemp(prefix="postroom-fm-")
    rc, text, log = fetchmail(inst, home, True, inst.port("pop3s"))
    assert rc == 0, log
    for i in range(3):
        assert f"Subject: message {i + 1}" in text
    assert len(inst.maildir_files(user)) == 3          # kept
    # uidl: a second run with keep fetches nothing new (exit 1: no mail)
    os.unlink(os.path.join(home, "out.mbox"))
    rc, text, log = fetchmail(inst, home, True, inst.port("pop3s"))
    assert rc == 1 and text == "", log
    # one more message: only it is fetched
    deliver(inst, user, simple_msg(4))
    rc, text, log = fetchmail(inst, home, True, inst.port("pop3s"))
    assert rc == 0 and "Subject: message 4" in text, log
    assert "Subject: message 1" not in text
    # without keep, fetchall (and over STLS on the plain port): all four
    # fetched again, then deleted on the server
    os.unlink(os.path.join(home, "out.mbox"))
    rc, text, log = fetchmail(inst, home, False, inst.port("pop3"), stls=True)
    assert rc == 0, log
    for i in range(4):
        assert f"Subject: message {i + 1}" in text
    assert inst.maildir_files(user) == []
    r = Raw.connect(inst, tls=True)
    r.login(user)
    assert r.cmd("STAT") == b"+OK 0 0"
    r.cmd("QUIT")


def test_getmail6(inst):
    need("getmail")
    user = "gm@example.test"
    inst.add_user(user)
    for i in range(2):
        deliver(inst, user, simple_msg(i + 1))
    home = tempfile.mkdtemp(prefix="postroom-gm-")
    md = os.path.join(home, "Maildir")
    for d in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(md, d))
    dest_user = ""
    if os.geteuid() == 0:
        # getmail refuses to deliver as root: it switches to `user`.
        dest_user = "user = nobody\n"
        for dp in (home, md, *(os.path.join(md, d) for d in ("cur", "new", "tmp"))):
            os.chmod(dp, 0o777)
    rcfile = os.path.join(home, "getmailrc")
    with open(rcfile, "w") as f:
        f.write("[retriever]\ntype = SimplePOP3SSLRetriever\nserver = 127.0.0.1\n"
                f"port = {inst.port('pop3s')}\nusername = {user}\npassword = {PASSWORD}\n"
                f"ca_certs = {inst.cert}\n"
                f"[destination]\ntype = Maildir\npath = {md}/\n{dest_user}"
                "[options]\nread_all = true\ndelete = false\n")
    r = subprocess.run(["getmail", f"--getmaildir={home}", f"--rcfile={rcfile}"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    got = os.listdir(os.path.join(md, "new"))
    assert len(got) == 2
    assert len(inst.maildir_files(user)) == 2
