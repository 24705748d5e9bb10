"""Header fields smtpd adds after its trace fields (Authentication-Results on
the MX listener, Message-ID and Date on submission) are put in place in the
message as stored, for a message small enough to stay in memory until its
commit and for one large enough to be in its file before that (the store
rewrites the file then): trace fields first, the added fields, the header
as sent (forged Authentication-Results for our host removed), the body byte
for byte; nothing left in data_dir/tmp."""
import os

import pytest

from lib.smtp import (ALICE, BOB, Raw, read_file, send_raw, setup_users,
                      submission_session, token, wait_find)

HOST = "mail.example.test"


@pytest.fixture(scope="module")
def smtp(srv):
    setup_users(srv)
    srv.start("smtpd")
    return srv


def body_of(size):
    lines, n = [], 0
    while n < size:
        ln = f"line {n:09d} " + "x" * 60 + "\r\n"
        lines.append(ln)
        n += len(ln)
    return "".join(lines)


def split(stored):
    head, body = stored.split(b"\r\n\r\n", 1)
    return head.decode().split("\r\n"), body


def tmp_empty(inst):
    return os.listdir(os.path.join(inst.data_dir, "tmp")) == []


@pytest.mark.parametrize("size", [1000, 600 * 1024])
def test_mx_authentication_results_in_place(smtp, size):
    tok = token()
    body = body_of(size)
    msg = (f"Authentication-Results: {HOST}; spf=pass smtp.mailfrom=x@y\r\n"
           f"From: <carol@remote.test>\r\nTo: <{BOB}>\r\nSubject: inplace {tok}\r\n"
           f"X-Kept: yes\r\n\r\n{body}")
    r = Raw.connect(smtp, "smtp")
    r.greeting()
    r.ehlo()
    send_raw(r, "carol@remote.test", [BOB], msg[:-2])
    r.expect("QUIT", 221)
    (path,) = wait_find(smtp, BOB, tok)
    head, got = split(read_file(path))
    assert got == body.encode()
    assert head[0].startswith("Return-Path: <carol@remote.test>")
    assert head[1].startswith("Received: from client.test")
    ars = [i for i, ln in enumerate(head) if ln.startswith("Authentication-Results:")]
    assert len(ars) == 1 and "spf=pass smtp.mailfrom=x@y" not in head[ars[0]]
    received_end = max(i for i, ln in enumerate(head)
                       if i < ars[0] and (ln.startswith("Received:") or ln[:1] == "\t"))
    assert ars[0] == received_end + 1, head
    rest = [ln for ln in head[ars[0] + 1:] if not ln[:1] in (" ", "\t")]
    assert rest == ["From: <carol@remote.test>", f"To: <{BOB}>",
                    f"Subject: inplace {tok}", "X-Kept: yes"], head
    assert os.path.getsize(path) == len(read_file(path))
    assert tmp_empty(smtp)


@pytest.mark.parametrize("size", [1000, 600 * 1024])
def test_submission_fields_in_place(smtp, size):
    tok = token()
    body = body_of(size)
    msg = f"From: <{ALICE}>\r\nTo: <{BOB}>\r\nSubject: inplace {tok}\r\n\r\n{body}"
    r = submission_session(smtp)
    send_raw(r, ALICE, [BOB], msg[:-2])
    r.expect("QUIT", 221)
    (path,) = wait_find(smtp, BOB, tok)
    head, got = split(read_file(path))
    assert got == body.encode()
    names = [ln.split(":", 1)[0] for ln in head if ln[:1] not in (" ", "\t")]
    assert names[:2] == ["Return-Path", "Received"], head
    # The fields smtpd adds, right after the trace fields; then the
    # header as sent.
    assert names[-3:] == ["From", "To", "Subject"], head
    assert set(names[2:-3]) >= {"Message-ID", "Date"}, head
    assert tmp_empty(smtp)
