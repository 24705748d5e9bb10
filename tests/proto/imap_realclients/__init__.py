"""End-to-end tests of imapd with real programs from Debian (mbsync, curl,
fetchmail, getmail6) and Python's imaplib for every advertised extension."""
