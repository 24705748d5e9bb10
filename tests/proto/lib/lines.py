"""The line-level client: a plain or TLS socket with a CRLF line reader.
The SMTP, POP3 and abuse clients add their protocol's verbs on top."""
import socket
import ssl

from .instance import WRAP_SCALE


class RawLine:
    def __init__(self, sock):
        self.s = sock
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.s.sendall(data)

    def _fill(self):
        data = self.s.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def raw_line(self):
        """The next CRLF-terminated line, without the CRLF, as bytes."""
        while b"\r\n" not in self.buf:
            self._fill()
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln

    def is_closed(self, timeout=10):
        """True once the server has closed (EOF or reset) within timeout;
        reads and drops anything before that."""
        self.s.settimeout(timeout * WRAP_SCALE)
        try:
            while True:
                if not self.s.recv(65536):
                    return True
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            return True
        except socket.timeout:
            return False

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass
