"""A milter on python3-milter (pymilter, so libmilter reads the macros, as
in OpenDKIM, OpenDMARC and clamav-milter) that records the macros it can
read at each stage and adds them to the message at its end as fields
"X-Macro: stage name=value", one per macro found. A second milter may read
the message after it: "X-Macro-Seen: stage name=value" fields record the
X-Macro fields it saw (each milter reads the header the milters before it
left). Run: macromilter.py PORT; prints "ready"."""
import sys

import Milter

NAMES = ["j", "{daemon_name}", "v", "_", "{client_addr}", "{client_name}",
         "{tls_version}", "{cipher}", "i", "{mail_addr}", "{rcpt_addr}"]


class MacroMilter(Milter.Base):
    def __init__(self):
        self.found = []
        self.seen = []

    def record(self, stage):
        # libmilter answers from the macros of this stage and the earlier
        # ones of the message and connection.
        for n in NAMES:
            v = self.getsymval(n)
            if v is not None:
                self.found.append(f"{stage} {n}={v}")

    def connect(self, hostname, family, hostaddr):
        self.record("connect")
        return Milter.CONTINUE

    def hello(self, helo):
        self.record("helo")
        return Milter.CONTINUE

    def envfrom(self, f, *params):
        self.found = [x for x in self.found if x.split(" ")[0] in ("connect", "helo")]
        self.seen = []
        self.record("mail")
        return Milter.CONTINUE

    def envrcpt(self, to, *params):
        self.record("rcpt")
        return Milter.CONTINUE

    def data(self):
        self.record("data")
        return Milter.CONTINUE

    def header(self, name, value):
        if name.lower() == "x-macro":
            self.seen.append(value)
        return Milter.CONTINUE

    def eoh(self):
        self.record("eoh")
        return Milter.CONTINUE

    def eom(self):
        self.record("eom")
        for v in self.seen:
            self.addheader("X-Macro-Seen", v)
        for v in self.found:
            self.addheader("X-Macro", v)
        return Milter.CONTINUE


def main():
    port = sys.argv[1]
    Milter.factory = MacroMilter
    Milter.set_flags(Milter.ADDHDRS)
    print("ready", flush=True)
    Milter.runmilter("postroom-macros", f"inet:{port}@127.0.0.1", 240)


if __name__ == "__main__":
    main()
