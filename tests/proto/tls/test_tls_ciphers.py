"""TLS 1.2 cipher policy of the three daemons: only the ECDHE suites of
Mozilla's "intermediate" policy (AES-GCM or ChaCha20-Poly1305) are accepted
by default, on implicit TLS and STARTTLS alike; suites without
forward secrecy or with CBC and SHA-1 are refused; TLS 1.3 still works; and
`tls_ciphers` widens the list for those who must."""
import socket
import ssl

import pytest

from lib.instance import Instance

WEAK = ["AES128-SHA", "AES128-GCM-SHA256", "AES256-GCM-SHA384",
        "ECDHE-RSA-AES128-SHA",
        # DHE: forward secret, but on a published prime (graded LOW)
        "DHE-RSA-AES128-GCM-SHA256"]
GOOD = ["ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-RSA-CHACHA20-POLY1305"]

# (listener key, how to reach TLS on it)
PORTS = [("smtps", None), ("submission", "smtp"), ("smtp", "smtp"),
         ("imaps", None), ("imap", "imap"), ("pop3s", None), ("pop3", "pop3")]


def ctx12(cipher):
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    c.minimum_version = c.maximum_version = ssl.TLSVersion.TLSv1_2
    # SECLEVEL=0: let this client offer the weak suites at all.
    c.set_ciphers(cipher + ":@SECLEVEL=0")
    return c


def readline(f):
    line = f.readline()
    assert line, "connection closed"
    return line


def starttls(sock, proto):
    """Brings a plain connection to the point where the TLS handshake
    starts."""
    f = sock.makefile("rb")
    if proto == "smtp":
        assert readline(f).startswith(b"220")
        sock.sendall(b"EHLO client.example.test\r\n")
        while not readline(f).startswith(b"250 "):
            pass
        sock.sendall(b"STARTTLS\r\n")
        assert readline(f).startswith(b"220")
    elif proto == "imap":
        assert readline(f).startswith(b"* OK")
        sock.sendall(b"a STARTTLS\r\n")
        assert readline(f).startswith(b"a OK")
    else:
        assert readline(f).startswith(b"+OK")
        sock.sendall(b"STLS\r\n")
        assert readline(f).startswith(b"+OK")
    f.detach()


def handshake(pr, key, proto, ctx):
    """The negotiated (version, cipher) or None if the server refused."""
    sock = socket.create_connection(("127.0.0.1", pr.port(key)), timeout=30)
    try:
        if proto is not None:
            starttls(sock, proto)
        try:
            tls = ctx.wrap_socket(sock, server_hostname="mail.example.test")
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            return None
        got = tls.version(), tls.cipher()[0]
        tls.close()
        return got
    finally:
        sock.close()


@pytest.fixture(scope="module")
def tlssrv():
    inst = Instance()
    try:
        inst.start("smtpd", "pop3d", "imapd")
        yield inst
    finally:
        inst.stop_all()


@pytest.mark.parametrize("key,proto", PORTS)
def test_weak_tls12_suites_refused(tlssrv, key, proto):
    for cipher in WEAK:
        try:
            ctx = ctx12(cipher)
        except ssl.SSLError:
            pytest.skip(f"this OpenSSL cannot offer {cipher}")
        got = handshake(tlssrv, key, proto, ctx)
        assert got is None, f"{key} accepted {cipher} over TLS 1.2: {got}"


@pytest.mark.parametrize("key,proto", PORTS)
def test_forward_secret_aead_suites_work(tlssrv, key, proto):
    for cipher in GOOD:
        got = handshake(tlssrv, key, proto, ctx12(cipher))
        assert got == ("TLSv1.2", cipher), (key, cipher, got)
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    c.minimum_version = ssl.TLSVersion.TLSv1_3
    got = handshake(tlssrv, key, proto, c)
    assert got is not None and got[0] == "TLSv1.3", (key, got)


def test_tls_ciphers_widens(pr):
    pr.write_config(tls_ciphers="ECDHE-RSA-AES128-GCM-SHA256:AES128-SHA:"
                    "DHE-RSA-AES128-GCM-SHA256")
    pr.start("imapd")
    assert handshake(pr, "imaps", None, ctx12("AES128-SHA")) == \
        ("TLSv1.2", "AES128-SHA")
    assert handshake(pr, "imaps", None, ctx12("DHE-RSA-AES128-GCM-SHA256")) \
        == ("TLSv1.2", "DHE-RSA-AES128-GCM-SHA256")
    assert handshake(pr, "imaps", None, ctx12("AES256-GCM-SHA384")) is None


def test_bad_tls_ciphers_is_an_error(pr):
    pr.write_config(tls_ciphers="NO-SUCH-CIPHER")
    with pytest.raises(AssertionError, match="bad tls_ciphers"):
        pr.start("imapd")
    # It exited (status 1) before listening: nothing to stop.
    assert pr.procs.pop("imapd").wait() == 1
    pr.logs.pop("imapd").close()
