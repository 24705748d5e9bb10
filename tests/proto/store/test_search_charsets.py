"""SEARCH finds text whatever charset the message was written in: bodies
(8bit and base64) and RFC 2047 encoded Subject words in ISO-2022-JP,
Shift_JIS, GB18030, KOI8-R, windows-1251, ISO-8859-7 and the charsets
converted before (Latin-1, windows-1252), searched with UTF-8 keys over
imaplib; a charset nobody knows stays searchable byte for byte."""
import base64
import imaplib

from lib.instance import PASSWORD, WRAP_SCALE

USER = "charsets@example.test"

# charset, text (as Python str), encoding of the body
CASES = [
    ("ISO-2022-JP", "日本語のメール", "7bit"),
    ("Shift_JIS", "日本語の本文", "base64"),
    ("GB18030", "中文邮件内容", "8bit"),
    ("KOI8-R", "Привет мир", "8bit"),
    ("windows-1251", "Добрый день", "base64"),
    ("ISO-8859-7", "Καλημέρα κόσμε", "8bit"),
    ("ISO-8859-1", "café crème", "8bit"),
    ("windows-1252", "€uro signs", "8bit"),
]


def message(i, cs, text, cte):
    subj = "=?%s?B?%s?=" % (cs, base64.b64encode(
        ("S%d " % i + text).encode(cs)).decode())
    raw = ("B%d " % i + text + "\r\n").encode(cs)
    if cte == "base64":
        raw = base64.encodebytes(raw).replace(b"\n", b"\r\n")
    return (("From: a@example.test\r\nTo: %s\r\nSubject: %s\r\n"
             "MIME-Version: 1.0\r\n"
             "Content-Type: text/plain; charset=%s\r\n"
             "Content-Transfer-Encoding: %s\r\n\r\n")
            % (USER, subj, cs, cte)).encode() + raw


def search(c, key, text):
    """UID SEARCH CHARSET UTF-8 <key> <text as a literal>."""
    c.literal = text.encode("utf-8")
    typ, data = c.uid("SEARCH", "CHARSET", "UTF-8", key)
    assert typ == "OK", data
    return [int(x) for x in data[0].split()]


def test_search_charsets(pr):
    pr.add_user(USER)
    pr.write_config(allow_plaintext_auth="yes")
    pr.start("imapd")
    c = imaplib.IMAP4("127.0.0.1", pr.port("imap"), timeout=60 * WRAP_SCALE)
    c.login(USER, PASSWORD)
    uids = []
    for i, (cs, text, cte) in enumerate(CASES):
        typ, data = c.append("INBOX", None, None, message(i, cs, text, cte))
        assert typ == "OK", data
    # And one in a charset no converter knows: searchable as raw bytes.
    typ, data = c.append("INBOX", None, None, (
        "Subject: x\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=x-unknown-cs\r\n\r\n"
        "plain ascii words\r\n").encode())
    assert typ == "OK", data
    c.select("INBOX")
    typ, data = c.uid("SEARCH", "ALL")
    uids = [int(x) for x in data[0].split()]
    assert len(uids) == len(CASES) + 1
    for i, (cs, text, cte) in enumerate(CASES):
        word = text.split()[0]
        got = search(c, "BODY", "B%d %s" % (i, word))
        assert got == [uids[i]], (cs, "BODY", got)
        got = search(c, "SUBJECT", "S%d %s" % (i, word))
        assert got == [uids[i]], (cs, "SUBJECT", got)
        # TEXT covers both header and body.
        got = search(c, "TEXT", text.split()[-1])
        assert uids[i] in got, (cs, "TEXT", got)
    assert search(c, "BODY", "ascii words") == [uids[-1]]
    c.logout()
