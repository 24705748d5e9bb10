"""Client-replay suite: scripted sessions of Thunderbird, Outlook, Apple Mail/iOS,
K-9 and mutt against imapd (sessions in sessions/*.imap), plus protocol-edge
tests of the client-compatibility rules."""
