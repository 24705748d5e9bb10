"""Helpers of the protocol tests (tests/proto/**), standard library only so
that the client side is independent of the code under test.

- Instance (lib.instance): one installation under test; daemons started on
  free loopback ports in a temporary data dir, always stopped and checked.
  The fixtures `pr` (one per test) and `srv` (one per module) come from
  tests/proto/conftest.py.
- RawLine (lib.lines): the line client that the protocol clients extend.
- message(), deliver(), new_user(), wait_for() (lib.mail).
- imap_login(), pop3_login(), smtp_login() (lib.logins): logged-in
  imaplib/poplib/smtplib clients.
- lib.imap, lib.smtp, lib.pop3: each protocol's raw client and helpers.
"""
from .instance import (BIN, DOMAIN, PASSWORD, ROOT, SANITIZER_MARKS, WRAP, WRAP_SCALE,  # noqa: F401
                       Instance, certificate, client_tls_context, default_signals,
                       free_port)
from .lines import RawLine  # noqa: F401
from .logins import imap_login, pop3_login, smtp_login  # noqa: F401
from .mail import DATE, deliver, message, new_user, wait_for  # noqa: F401
