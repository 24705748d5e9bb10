"""Instance: one Postroom installation under test. It starts the real daemons
on free loopback ports in a temporary data dir, with a generated config and a
test certificate, creates users with mailctl, and stops the daemons again,
requiring a clean exit and a clean sanitizer log."""
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
BIN = os.environ.get("POSTROOM_BIN") or os.path.join(ROOT, "build", "san", "bin")
# Opt-in wrapper put before every daemon and mailctl, e.g. POSTROOM_WRAP="valgrind
# --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite -q"
# (with a non-sanitizer build). Wrapped programs run slower, so the harness's
# own waits are multiplied by WRAP_SCALE; tests may use it for theirs too.
WRAP = os.environ.get("POSTROOM_WRAP", "").split()
WRAP_SCALE = int(os.environ.get("POSTROOM_WRAP_SCALE", "10")) if WRAP else 1
DOMAIN = "example.test"
PASSWORD = "s3cret-Pass"

LISTENERS = {
    "smtpd": ["smtp_listen", "submission_listen", "smtps_listen"],
    "pop3d": ["pop3_listen", "pop3s_listen"],
    "imapd": ["imap_listen", "imaps_listen"],
    "mtad": [],
}

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "AddressSanitizer:DEADLYSIGNAL")

_CERT = None
# Every Instance of this run, so that none outlives it (kill_leftovers()).
_INSTANCES = []
# Temporary directories of this run: removed at the end of a passing run
# (cleanup()), kept (for the logs and data) when anything failed.
_MADE_DIRS = []


def cleanup(failed):
    """Removes this run's temporary directories unless the run failed or
    POSTROOM_KEEP is set."""
    if failed or os.environ.get("POSTROOM_KEEP"):
        return
    if _CERT is not None:
        _MADE_DIRS.append(os.path.dirname(_CERT[0]))
    for d in _MADE_DIRS:
        shutil.rmtree(d, ignore_errors=True)
    del _MADE_DIRS[:]


def kill_leftovers():
    """SIGKILLs daemons that an instance still has running (a test that
    made an Instance itself and did not stop it); returns their names."""
    left = []
    for inst in _INSTANCES:
        for name in list(inst.procs):
            left.append(name)
            inst.kill(name)
    del _INSTANCES[:]
    return left


def certificate():
    """(cert.pem, key.pem): a self-signed certificate for mail.example.test,
    made once per run."""
    global _CERT
    if _CERT is None:
        d = tempfile.mkdtemp(prefix="postroom-cert-")
        cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
             "-keyout", key, "-out", cert, "-days", "2", "-subj",
             "/CN=mail.example.test", "-addext",
             "subjectAltName=DNS:mail.example.test,DNS:localhost,IP:127.0.0.1"],
            check=True, capture_output=True)
        _CERT = (cert, key)
    return _CERT


_HANDED_OUT = set()


def free_port():
    """A port that is free now, taken below the kernel's ephemeral range
    (32768+) so that outgoing connections of other tests cannot grab it
    between this check and the daemon's bind, and never handed out twice
    in one run."""
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(12000, 32000)
        if port in _HANDED_OUT:
            continue
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port))
        except OSError:
            continue
        _HANDED_OUT.add(port)
        return port
    raise AssertionError("no free loopback port found")


def client_tls_context():
    """A client context that accepts the test certificate."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def default_signals():
    """preexec_fn for a child that a test will signal: SIGINT, SIGTERM,
    SIGHUP and SIGQUIT back to their defaults. A job started in the
    background by a non-interactive shell (`make test &`) inherits SIGINT
    and SIGQUIT ignored, and a shell cannot trap a signal that was ignored
    when it started, so without this SIGINT would not reach the child."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)


class Instance:
    """One instance: a data dir, a config, and the daemons started in it.
    bindir defaults to $POSTROOM_BIN (else build/san/bin)."""

    def __init__(self, extra_config=None, bindir=None):
        self.bin = bindir or BIN
        self.dir = tempfile.mkdtemp(prefix="postroom-test-")
        _MADE_DIRS.append(self.dir)
        self.data_dir = os.path.join(self.dir, "data")
        self.conf = os.path.join(self.dir, "postroom.conf")
        self.cert, self.key = certificate()
        self.ports = {k: free_port() for v in LISTENERS.values() for k in v}
        self.dns_port = free_port()
        self.procs = {}
        self.logs = {}
        self.extra = dict(extra_config or {})
        self.write_config()
        _INSTANCES.append(self)

    # -- configuration -------------------------------------------------
    def write_config(self, **more):
        self.extra.update(more)
        lines = [
            "hostname = mail.example.test",
            f"data_dir = {self.data_dir}",
            f"tls_cert = {self.cert}",
            f"tls_key = {self.key}",
            "max_message_size = 10M",
            "allow_plaintext_auth = no",
        ]
        for key, port in self.ports.items():
            lines.append(f"{key} = 127.0.0.1:{port}")
        # The MX checks (SPF, DKIM, DMARC, reverse DNS) look names up: a test
        # must never ask the machine's resolver (traffic off loopback). A
        # closed loopback port answers at once (ICMP port unreachable), so
        # every lookup is a quick temperror unless a test serves its zones.
        lines.append(f"dns_servers = 127.0.0.1:{self.dns_port}")
        for k, v in self.extra.items():
            lines = [ln for ln in lines if not ln.startswith(k + " ")]
            lines.append(f"{k} = {v}")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def port(self, key):
        """Port of a listener: 'smtp', 'submission', 'smtps', 'pop3', ..."""
        return self.ports[key + "_listen"]

    # -- mailctl -------------------------------------------------------
    def mailctl(self, *args, input=None, check=True):
        r = subprocess.run([*WRAP, os.path.join(self.bin, "mailctl"), "-c", self.conf, *args],
                           input=input, capture_output=True, text=True,
                           timeout=60 * WRAP_SCALE)
        if check and r.returncode != 0:
            raise AssertionError(f"mailctl {' '.join(args)} -> {r.returncode}: {r.stderr}")
        return r

    def add_user(self, address, password=PASSWORD, quota=None):
        dom = address.split("@", 1)[1]
        if dom not in self.mailctl("domain", "list").stdout.split():
            self.mailctl("domain", "add", dom)
        args = ["user", "add", address, "--password-stdin"]
        if quota:
            args += ["--quota", str(quota)]
        self.mailctl(*args, input=password + "\n")
        return address

    # -- daemons -------------------------------------------------------
    def start(self, *names, env=None):
        for name in names:
            assert name not in self.procs, f"{name} already running"
            log = open(os.path.join(self.dir, f"{name}.log"), "w+")
            e = dict(os.environ)
            e.update(env or {})
            for attempt in range(3):
                log.seek(0)
                log.truncate()
                p = subprocess.Popen([*WRAP, os.path.join(self.bin, name), "-c", self.conf],
                                     stdout=log, stderr=subprocess.STDOUT, env=e)
                self.procs[name], self.logs[name] = p, log
                try:
                    for key in LISTENERS[name]:
                        self.wait_port(self.ports[key], p, name)
                    break
                except AssertionError:
                    # Another process took a port between our check and the
                    # bind: pick new ports for this daemon and try again.
                    if attempt == 2 or "Address already in use" not in self.log(name):
                        raise
                    p.wait()
                    for key in LISTENERS[name]:
                        self.ports[key] = free_port()
                    self.write_config()
        return self

    def wait_port(self, port, proc, name, timeout=60):
        deadline = time.time() + timeout * WRAP_SCALE
        while time.time() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited {proc.returncode}: {self.log(name)}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"{name} did not listen on {port}")

    def log(self, name):
        f = self.logs.get(name)
        if not f:
            return ""
        f.flush()
        with open(f.name, errors="replace") as r:
            return r.read()

    def signal(self, name, sig):
        self.procs[name].send_signal(sig)

    def kill(self, name):
        """SIGKILL, for crash tests; the daemon may be started again."""
        p = self.procs.pop(name)
        p.kill()
        p.wait()
        self.logs.pop(name).close()

    def stop(self, name, timeout=60):
        """SIGTERM; asserts exit 0 and a clean sanitizer log."""
        p = self.procs.pop(name)
        p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(timeout=timeout * WRAP_SCALE)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise AssertionError(f"{name} did not stop on SIGTERM: {self.log(name)[-3000:]}")
        text = self.log(name)
        self.logs.pop(name).close()
        bad = [m for m in SANITIZER_MARKS if m in text]
        assert not bad, f"{name} sanitizer report:\n{text[-6000:]}"
        assert rc == 0, f"{name} exited {rc}:\n{text[-3000:]}"

    def stop_all(self):
        errors = []
        for name in list(self.procs):
            try:
                self.stop(name)
            except AssertionError as e:
                errors.append(str(e))
        if errors:
            raise AssertionError("\n".join(errors))

    # -- client helpers ------------------------------------------------
    def connect(self, key, tls=False, timeout=10):
        s = socket.create_connection(("127.0.0.1", self.port(key)),
                                     timeout=timeout * WRAP_SCALE)
        if tls:
            s = client_tls_context().wrap_socket(s, server_hostname="mail.example.test")
        return s

    def maildir_files(self, address):
        local, dom = address.split("@")
        root = os.path.join(self.data_dir, "mail", dom, local)
        out = []
        for dp, _, fns in os.walk(root):
            if os.path.basename(dp) == "cur":
                out += [os.path.join(dp, f) for f in fns]
        return out
