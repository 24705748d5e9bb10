"""Runs every recorded client session in sessions/*.imap against imapd,
response by response (driver: replay.py). Each file says what its sequence is
based on; sessions that need an extension skip when it is not advertised after
login, core-protocol sessions never skip."""
import glob
import os

import pytest

from .replay import SkipSession, run_session_file

SESSIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sessions")
FILES = sorted(glob.glob(os.path.join(SESSIONS, "*.imap")))


@pytest.mark.parametrize("path", FILES, ids=[os.path.basename(f)[:-5] for f in FILES])
def test_session(target, path):
    try:
        run_session_file(path, target)
    except SkipSession as e:
        pytest.skip(str(e))
