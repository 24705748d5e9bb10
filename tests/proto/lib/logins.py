"""Logged-in standard-library clients (imaplib, poplib, smtplib) for one
user of an Instance, over the plain port or implicit TLS."""
import imaplib
import poplib
import smtplib

from .instance import PASSWORD, WRAP_SCALE, client_tls_context


def imap_login(inst, user="alice@example.test", password=PASSWORD, tls=False):
    """imaplib client on imap (plain, which needs allow_plaintext_auth) or
    imaps (tls=True), logged in."""
    if tls:
        m = imaplib.IMAP4_SSL("127.0.0.1", inst.port("imaps"),
                              ssl_context=client_tls_context(), timeout=30 * WRAP_SCALE)
    else:
        m = imaplib.IMAP4("127.0.0.1", inst.port("imap"), timeout=30 * WRAP_SCALE)
    m.login(user, password)
    return m


def pop3_login(inst, user, password=PASSWORD, tls=False):
    """poplib client on pop3 or pop3s (tls=True), logged in with USER/PASS."""
    if tls:
        p = poplib.POP3_SSL("127.0.0.1", inst.port("pop3s"),
                            context=client_tls_context(), timeout=30 * WRAP_SCALE)
    else:
        p = poplib.POP3("127.0.0.1", inst.port("pop3"), timeout=30 * WRAP_SCALE)
    p.user(user)
    p.pass_(password)
    return p


def smtp_login(inst, user, password=PASSWORD, key="submission"):
    """smtplib client on submission (after STARTTLS) or smtps, logged in."""
    if key == "smtps":
        s = smtplib.SMTP_SSL("127.0.0.1", inst.port("smtps"),
                             context=client_tls_context(), timeout=30 * WRAP_SCALE)
        s.ehlo("client.test")
    else:
        s = smtplib.SMTP("127.0.0.1", inst.port(key), timeout=30 * WRAP_SCALE)
        s.ehlo("client.test")
        s.starttls(context=client_tls_context())
        s.ehlo("client.test")
    s.login(user, password)
    return s
