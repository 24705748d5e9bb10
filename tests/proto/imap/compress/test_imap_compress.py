"""imapd COMPRESS=DEFLATE (RFC 4978) end to end: a compressed round trip,
bytes pipelined right behind the command, and garbage on the compressed
stream."""
import re
import zlib

import pytest

from lib import message, new_user
from lib.imap import TextRaw as Raw, module_instance, raw_fill as fill, raw_login as login

imapsrv = module_instance("imapsrv", ("imapd", "smtpd", "pop3d"))


# ---- COMPRESS=DEFLATE ----------------------------------------------------

def test_compress_round_trip(imapsrv):
    user = new_user(imapsrv)
    r = Raw(imapsrv)
    unt, t = r.cmd("COMPRESS DEFLATE")
    assert " BAD " in t, "COMPRESS before authentication"
    r.login(user)
    fill(r, 1, to=user)
    r.append("INBOX", message("big", to=user, size=200000))
    unt, t = r.cmd("COMPRESS GZIP")
    assert " BAD " in t
    unt, t = r.cmd("COMPRESS DEFLATE", tag="c1")
    assert t == "c1 OK DEFLATE active", t
    r.start_compress()
    before = r.wire_in
    r.ok("SELECT INBOX")
    unt, t = r.ok("FETCH 1:* (RFC822.SIZE BODY.PEEK[])")
    sizes = [int(re.search(r"RFC822\.SIZE (\d+)", x).group(1)) for x in unt if "FETCH" in x]
    assert len(sizes) == 2 and sizes[1] > 190000
    assert r.wire_in - before < sizes[1] / 2, "FETCH output was not compressed"
    unt, t = r.cmd("COMPRESS DEFLATE")
    assert " NO " in t and "[COMPRESSIONACTIVE]" in t, t
    # a command split over two partial-flushed deflate blocks
    r.sock.sendall(r.deflater.compress(b"p1 NO") + r.deflater.flush(zlib.Z_PARTIAL_FLUSH))
    r.send("OP\r\n")
    unt, t = r.until("p1")
    assert t.startswith("p1 OK"), t
    unt, t = r.ok("LOGOUT")
    r.close()


def test_compress_pipelined_in_same_packet(imapsrv):
    """Bytes sent right behind COMPRESS DEFLATE are compressed ones and must
    be inflated, not parsed as plain text."""
    user = new_user(imapsrv)
    r = login(imapsrv, user)
    d = zlib.compressobj(6, zlib.DEFLATED, -15)
    r.sock.sendall(b"c1 COMPRESS DEFLATE\r\n" + d.compress(b"c2 NOOP\r\n") +
                   d.flush(zlib.Z_SYNC_FLUSH))
    unt, t = r.until("c1")
    assert t == "c1 OK DEFLATE active", t
    r.start_compress()
    r.deflater = d
    unt, t = r.until("c2")
    assert t.startswith("c2 OK"), t
    r.ok("NOOP")
    r.close()


def test_compress_garbage_closes(imapsrv):
    user = new_user(imapsrv)
    r = login(imapsrv, user)
    r.ok("COMPRESS DEFLATE")
    r.sock.sendall(b"\xff\xff\xff\xff not deflate at all\r\n")
    with pytest.raises((EOFError, ConnectionResetError)):
        while True:
            r._fill()
    r.close()
