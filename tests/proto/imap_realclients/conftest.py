"""Reuses the client-replay fixtures: imap_server (imapd, plus smtpd when built)
and target/target2 (a fresh user each)."""
from clients.conftest import imap_server, target, target2  # noqa: F401
