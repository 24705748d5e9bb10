"""Real IMAP programs from Debian against imapd: mbsync (two-way sync of every
folder), curl (list, fetch by UID and section, append, search, STARTTLS),
fetchmail over IMAP (with IDLE), getmail6. Each test skips only if its tool is
missing; results are checked over IMAP with the replay driver's connection."""
import os
import re
import shutil
import subprocess
import tempfile
import time

import pytest

from .replay import make_message, quote


# mbsync and fetchmail check the certificate's DNS names, not IP addresses; the
# harness certificate names localhost (and the daemons listen on 127.0.0.1)
CERT_HOST = "localhost"


def tool(name):
    path = shutil.which(name)
    if not path:
        pytest.skip(f"{name} is not installed")
    return path


def run(args, timeout=120, **kw):
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)
    return r


def server_state(target):
    """{mailbox: {subject: flags}} over IMAP."""
    c = target.login()
    out = {}
    try:
        u, _ = c.ok('LIST "" "*"')
        boxes = []
        for line in u:
            m = re.match(r'\* LIST \(([^)]*)\) "/" (.*)$', line)
            if m and "\\noselect" not in m.group(1).lower():
                boxes.append(m.group(2).strip('"'))
        for b in boxes:
            c.ok(f"EXAMINE {quote(b)}")
            u, _ = c.ok("UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            msgs = {}
            for r in u:
                if " FETCH " not in r:
                    continue
                s = re.search(r"Subject: ([^\r\n]*)", r)
                f = re.search(r"FLAGS \(([^)]*)\)", r)
                msgs[s.group(1) if s else "?"] = set(f.group(1).split()) - {"\\Recent"}
            out[b] = msgs
    finally:
        c.close()
    return out


def maildir_msgs(path):
    out = {}
    for sub in ("cur", "new"):
        d = os.path.join(path, sub)
        if not os.path.isdir(d):
            continue
        for fn in os.listdir(d):
            with open(os.path.join(d, fn), "rb") as f:
                m = re.search(rb"Subject: ([^\r\n]*)", f.read())
            info = fn.split(":2,", 1)[1] if ":2," in fn else ""
            out[m.group(1).decode() if m else "?"] = (os.path.join(d, fn), info)
    return out


# ---------------------------------------------------------------------------
# mbsync

def test_mbsync_two_way(target, tmp_path):
    mbsync = tool("mbsync")
    target.append("INBOX", make_message("srv one", to=target.user))
    target.append("INBOX", make_message("srv two", to=target.user), "\\Flagged")
    target.append("INBOX", make_message("srv three", to=target.user))
    target.append("Archive", make_message("archived", to=target.user), "\\Seen")
    near = tmp_path / "mail"
    near.mkdir()
    rc = tmp_path / "mbsyncrc"
    rc.write_text(f"""IMAPAccount t
Host {CERT_HOST}
Port {target.imaps_port}
User {target.user}
Pass {target.password}
{os.environ.get("MBSYNC_EXTRA", "# MBSYNC_EXTRA")}
SSLType IMAPS
CertificateFile {target.cert}

IMAPStore t-far
Account t

MaildirStore t-near
Path {near}/
Inbox {near}/INBOX
SubFolders Verbatim

Channel t
Far :t-far:
Near :t-near:
Patterns *
Create Both
Expunge Both
SyncState *
""")

    def sync():
        r = run([mbsync, "-c", str(rc), "-a", "-V"] + (["-D"] if os.environ.get("MBSYNC_DEBUG") else []))
        assert r.returncode == 0, f"mbsync failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"

    sync()
    inbox = maildir_msgs(near / "INBOX")
    assert set(inbox) == {"srv one", "srv two", "srv three"}, inbox
    assert "F" in inbox["srv two"][1], inbox
    assert "archived" in maildir_msgs(near / "Archive")
    for box in ("Drafts", "Sent", "Trash", "Junk"):
        assert (near / box).is_dir(), f"{box} not synced"

    # local changes: read one, delete one, a new folder with a message, a new message
    path, info = inbox["srv one"]
    os.rename(path, path.replace("/new/", "/cur/").split(":2,")[0] + ":2,S")
    path, info = inbox["srv three"]
    os.rename(path, path.split(":2,")[0] + ":2,T" if ":2," in path else path + ":2,T")
    newbox = near / "LocalNew"
    for sub in ("cur", "new", "tmp"):
        (newbox / sub).mkdir(parents=True)
    (newbox / "cur" / "1700000000.1.host:2,S").write_bytes(
        make_message("local folder msg", to=target.user))
    (near / "INBOX" / "new" / "1700000001.2.host").write_bytes(
        make_message("local new", to=target.user))
    # server changes: new mail, a flag changed by another client
    target.deliver(make_message("srv four", to=target.user))
    c = target.login(select="INBOX")
    c.ok("UID SEARCH ALL")
    c.ok("STORE 2 +FLAGS (\\Answered)")
    c.close()

    sync()
    st = server_state(target)
    assert "\\Seen" in st["INBOX"]["srv one"], st["INBOX"]
    assert "srv three" not in st["INBOX"], st["INBOX"]
    assert "local new" in st["INBOX"], st["INBOX"]
    assert "LocalNew" in st and "\\Seen" in st["LocalNew"]["local folder msg"], st
    assert st["Archive"] == {"archived": {"\\Seen"}}
    inbox = maildir_msgs(near / "INBOX")
    assert "srv four" in inbox, inbox
    assert "R" in inbox["srv two"][1] and "F" in inbox["srv two"][1], inbox
    assert "srv three" not in inbox
    # a third run is a no-op and changes nothing
    sync()
    assert server_state(target) == st


# ---------------------------------------------------------------------------
# curl

def curl(target, url_path, *extra, tls=True, input=None):
    exe = tool("curl")
    scheme = "imaps" if tls else "imap"
    port = target.imaps_port if tls else target.imap_port
    args = [exe, "-sS", "--cacert", target.cert, "-u", f"{target.user}:{target.password}",
            *extra, f"{scheme}://{target.host}:{port}/{url_path}"]
    r = subprocess.run(args, capture_output=True, timeout=60, input=input)
    return r


def test_curl(target, tmp_path):
    tool("curl")
    body = make_message("curl subject", to=target.user, body="first line\r\nsecond\r\n")
    target.append("INBOX", body)
    target.append("INBOX", make_message("other", to=target.user))
    r = curl(target, "", "-k")
    assert r.returncode == 0, r.stderr
    listing = r.stdout.decode()
    for name in ("INBOX", "Drafts", "Sent", "Trash"):
        assert name in listing, listing
    c = target.login(select="INBOX")
    u, _ = c.ok("UID SEARCH ALL")
    first = u[-1].split()[2]
    c.close()
    r = curl(target, f"INBOX;UID={first}", "-k")
    assert r.returncode == 0 and r.stdout == body, (r.stderr, r.stdout[:200])
    r = curl(target, f"INBOX;UID={first};SECTION=TEXT", "-k")
    assert r.returncode == 0 and r.stdout == b"first line\r\nsecond\r\n", r.stdout
    r = curl(target, f"INBOX;UID={first};SECTION=HEADER.FIELDS%20(SUBJECT)", "-k")
    assert r.returncode == 0 and b"Subject: curl subject" in r.stdout, r.stdout
    r = curl(target, f"INBOX;UID={first};PARTIAL=0.10", "-k")
    assert r.returncode == 0 and r.stdout == body[:10], r.stdout
    r = curl(target, "INBOX;MAILINDEX=2", "-k")
    assert r.returncode == 0 and b"Subject: other" in r.stdout
    r = curl(target, "INBOX?SUBJECT%20curl", "-k")
    assert r.returncode == 0 and re.search(rb"\* SEARCH \d+", r.stdout), r.stdout
    # upload to Sent
    up = tmp_path / "up.eml"
    up.write_bytes(make_message("uploaded by curl", to=target.user))
    r = curl(target, "Sent", "-k", "-T", str(up))
    assert r.returncode == 0, r.stderr
    st = server_state(target)
    assert "uploaded by curl" in st["Sent"], st["Sent"]
    # any command
    r = curl(target, "INBOX", "-k", "-X", "UID FETCH 1:* (FLAGS)")
    assert r.returncode == 0 and r.stdout.count(b"FETCH") == 2, r.stdout
    # STARTTLS on the plain port, AUTHENTICATE with SASL-IR
    r = curl(target, "", "-k", "--ssl-reqd", tls=False)
    assert r.returncode == 0 and b"INBOX" in r.stdout, r.stderr
    r = curl(target, "", "-k", "--login-options", "AUTH=PLAIN", "--sasl-ir")
    assert r.returncode == 0, r.stderr
    r = curl(target, "", "-k", "--login-options", "AUTH=LOGIN")
    assert r.returncode == 0, r.stderr
    # a plain-text login without TLS must fail
    r = curl(target, "", tls=False)
    assert r.returncode != 0, "login without TLS succeeded"


# ---------------------------------------------------------------------------
# fetchmail

def fetchmail_rc(tmp_path, target, extra=""):
    out = tmp_path / "fm.mbox"
    rc = tmp_path / "fetchmailrc"
    rc.write_text(
        f'set no syslog\n'
        f'poll {CERT_HOST} service {target.imaps_port} protocol IMAP '
        f'user "{target.user}" password "{target.password}" ssl '
        f'sslcertfile "{target.cert}" sslcertck {extra} '
        f'mda "/bin/sh -c \'cat >> {out}\'"\n')
    os.chmod(rc, 0o600)
    return rc, out


def test_fetchmail_imap(target, tmp_path):
    fm = tool("fetchmail")
    for i in range(3):
        target.append("INBOX", make_message(f"fm {i}", to=target.user))
    rc, out = fetchmail_rc(tmp_path, target, "keep")
    env = dict(os.environ, HOME=str(tmp_path), FETCHMAILHOME=str(tmp_path))
    r = run([fm, "-f", str(rc), "-v", "--nodetach", "--nosyslog"], env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    got = out.read_bytes()
    assert all(f"Subject: fm {i}".encode() in got for i in range(3)), got[:500]
    st = server_state(target)
    assert all("\\Seen" in f for f in st["INBOX"].values()), st["INBOX"]
    # a second run with nothing new fetches nothing (exit 1 = no mail)
    r = run([fm, "-f", str(rc), "--nodetach", "--nosyslog"], env=env)
    assert r.returncode == 1, r.stdout + r.stderr


def test_fetchmail_idle(target, tmp_path):
    fm = tool("fetchmail")
    rc, out = fetchmail_rc(tmp_path, target, "idle")
    env = dict(os.environ, HOME=str(tmp_path), FETCHMAILHOME=str(tmp_path))
    c = target.login()
    caps = c.ok("CAPABILITY")[0][0].upper().split()
    c.close()
    if "IDLE" not in caps:
        pytest.skip("server does not advertise IDLE")
    log = tmp_path / "fm.log"
    with open(log, "w") as lf:
        p = subprocess.Popen([fm, "-f", str(rc), "-v", "-v", "--nodetach", "--nosyslog"],
                             stdout=lf, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.time() + 120        # generous: a loaded machine
        while time.time() < deadline and "IDLE" not in log.read_text():
            time.sleep(0.1)
        assert "IDLE" in log.read_text(), log.read_text()[-2000:]
        target.deliver(make_message("pushed to fetchmail", to=target.user))
        deadline = time.time() + 120
        while time.time() < deadline and not (
                out.exists() and b"pushed to fetchmail" in out.read_bytes()):
            time.sleep(0.1)
        assert out.exists() and b"pushed to fetchmail" in out.read_bytes(), \
            log.read_text()[-3000:]
    finally:
        p.terminate()
        p.wait(timeout=60)


# ---------------------------------------------------------------------------
# getmail6

def test_getmail6(target, tmp_path):
    gm = tool("getmail")
    for i in range(2):
        target.append("INBOX", make_message(f"gm {i}", to=target.user))
    # getmail refuses to deliver as root: deliver as nobody then, into a
    # maildir nobody can reach (pytest's tmp_path is private to root)
    as_user = ""
    md = tmp_path / "Maildir"
    if os.geteuid() == 0:
        import pathlib
        import pwd
        as_user = "user = nobody"
        md = pathlib.Path(tempfile.mkdtemp(prefix="postroom-getmail-")) / "Maildir"
        nobody = pwd.getpwnam("nobody")
    for sub in ("cur", "new", "tmp"):
        (md / sub).mkdir(parents=True)
        if as_user:
            os.chown(md / sub, nobody.pw_uid, nobody.pw_gid)
    if as_user:
        os.chown(md, nobody.pw_uid, nobody.pw_gid)
        os.chmod(md.parent, 0o755)
    rc = tmp_path / "getmailrc"
    rc.write_text(f"""[retriever]
type = SimpleIMAPSSLRetriever
server = {target.host}
port = {target.imaps_port}
username = {target.user}
password = {target.password}
mailboxes = ("INBOX", "Archive")
ca_certs = {target.cert}

[destination]
type = Maildir
path = {md}/
{as_user}

[options]
read_all = false
delete = false
verbose = 2
""")
    r = run([gm, f"--getmaildir={tmp_path}", f"--rcfile={rc}"])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    got = maildir_msgs(md)
    assert {"gm 0", "gm 1"} <= set(got), got
    # nothing new: a second run retrieves nothing
    r = run([gm, f"--getmaildir={tmp_path}", f"--rcfile={rc}"])
    assert r.returncode == 0 and len(maildir_msgs(md)) == 2, r.stdout
    if as_user:
        shutil.rmtree(md.parent, ignore_errors=True)
