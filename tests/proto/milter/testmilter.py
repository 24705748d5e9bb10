"""A test milter on python3-milter (pymilter): what it does with a message
is chosen by the message's X-Test-Action header (or a recipient whose
local part is "rcptreject"); at the commands themselves, by the HELO name
"tempfail.helo.test" (tempfail), the sender "mailreject@..." (reject), a
recipient "refused@..." (reject that one) or "stall@..." (never answer).
Run: testmilter.py PORT; prints "ready"."""
import sys
import time

import Milter


class TestMilter(Milter.Base):
    def __init__(self):
        self.action = None
        self.rcpt_reject = False
        self.seen = []

    def connect(self, hostname, family, hostaddr):
        self.seen.append("connect")
        return Milter.CONTINUE

    def hello(self, helo):
        self.seen.append("helo")
        if helo == "tempfail.helo.test":
            self.setreply("451", "4.7.1", "HELO deferred by the test milter")
            return Milter.TEMPFAIL
        return Milter.CONTINUE

    def envfrom(self, f, *params):
        self.seen.append("mail")
        if f.lower().startswith("<mailreject@"):
            self.setreply("550", "5.7.1", "Sender refused by the test milter")
            return Milter.REJECT
        return Milter.CONTINUE

    def envrcpt(self, to, *params):
        self.seen.append("rcpt")
        if to.lower().startswith("<rcptreject@"):
            self.rcpt_reject = True
        if to.lower().startswith("<refused@"):
            self.setreply("550", "5.7.1", "Recipient refused at RCPT by the test milter")
            return Milter.REJECT
        if to.lower().startswith("<stall@"):
            time.sleep(3600)
        return Milter.CONTINUE

    def header(self, name, value):
        if name.lower() == "x-test-action":
            self.action = value.strip()
        return Milter.CONTINUE

    def eoh(self):
        self.seen.append("eoh")
        return Milter.CONTINUE

    def body(self, chunk):
        if "body" not in self.seen:
            self.seen.append("body")
        return Milter.CONTINUE

    def eom(self):
        a = self.action
        self.addheader("X-Milter-Seen", " ".join(self.seen))
        if self.rcpt_reject:
            self.setreply("550", "5.7.1", "Recipient refused by the test milter")
            return Milter.REJECT
        if a == "reject":
            self.setreply("554", "5.7.1", "Rejected by the test milter")
            return Milter.REJECT
        if a == "reject-plain":
            return Milter.REJECT
        if a == "tempfail":
            self.setreply("451", "4.7.1", "Try again later, says the milter")
            return Milter.TEMPFAIL
        if a == "discard":
            return Milter.DISCARD
        if a == "quarantine":
            self.quarantine("test quarantine")
            return Milter.ACCEPT
        if a == "spam":
            self.addheader("X-Spam", "Yes")
            return Milter.CONTINUE
        if a == "spamflag":
            self.addheader("X-Spam-Flag", "YES")
            return Milter.CONTINUE
        if a == "headers":
            self.addheader("X-Added", "added value\n\tfolded")
            self.chgheader("Subject", 1, "changed subject")
            self.chgheader("X-Missing", 1, "now present")
            self.chgheader("X-Delete-Me", 1, "")
            self.addheader("X-First", "on top", 0)
            return Milter.ACCEPT
        if a == "stall":
            time.sleep(3600)
        return Milter.CONTINUE


def main():
    port = sys.argv[1]
    Milter.factory = TestMilter
    Milter.set_flags(Milter.ADDHDRS | Milter.CHGHDRS | Milter.QUARANTINE)
    print("ready", flush=True)
    Milter.runmilter("postroom-test", f"inet:{port}@127.0.0.1", 240)


if __name__ == "__main__":
    main()
