"""Runs a command in a private network namespace whose only resolver is a
test DNS server: for milters that can only ask the libc resolver
(/etc/resolv.conf, port 53), such as OpenDMARC. Started as
`unshare -r -n -m python3 netns_dns.py ZONES DIR -- command...`: the new
network namespace has nothing but its own loopback (no packet can leave
it), /etc/resolv.conf is bind-mounted (in the private mount namespace
only) to "nameserver 127.0.0.1", and a dnslib server answers on
127.0.0.1:53 from ZONES (zone-file lines, one a line). The command talks
to the MTA over a unix socket, which crosses network namespaces. Prints
"ready" once the DNS server is up, then runs the command until it exits
or this process gets SIGTERM."""
import fcntl
import os
import signal
import socket
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "outbound"))

from rig import DNS  # noqa: E402

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def loopback_up():
    # What `ip link set lo up` does, without needing iproute2.
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        req = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s, SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP))
    finally:
        s.close()


def main():
    zones, tmp, sep, cmd = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    assert sep == "--" and cmd
    loopback_up()
    resolv = os.path.join(tmp, "resolv.conf")
    with open(resolv, "w") as f:
        # Generous: the DNS server is a Python thread on a loaded machine.
        f.write("nameserver 127.0.0.1\noptions timeout:30 attempts:2\n")
    subprocess.run(["mount", "--bind", resolv, "/etc/resolv.conf"], check=True)
    dns = DNS(53)
    with open(zones) as f:
        for line in f:
            if line.strip():
                dns.zones.add(line.strip())
    child = subprocess.Popen(cmd)
    signal.signal(signal.SIGTERM, lambda *a: child.terminate())
    print("ready", flush=True)
    rc = child.wait()
    dns.stop()
    sys.exit(rc)


if __name__ == "__main__":
    main()
