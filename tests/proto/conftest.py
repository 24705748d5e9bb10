"""Fixtures of the protocol tests. The helpers themselves live in the
package tests/proto/lib (import them from there, never from this file:
`from conftest import` picks whichever conftest.py pytest loaded last).

A test asks for `pr` (a fresh instance per test) or `srv` (one instance per
module), then calls pr.start("smtpd", "imapd", ...). Teardown sends SIGTERM,
requires a clean exit, and fails the test if a sanitizer reported anything.
"""
import pytest

from lib import instance


def pytest_sessionfinish(session, exitstatus):
    left = instance.kill_leftovers()
    if left:
        print(f"\nproto: killed daemons left running by a test: {left}")
        session.exitstatus = 1
    instance.cleanup(session.exitstatus != 0)


@pytest.fixture
def pr():
    inst = instance.Instance()
    try:
        yield inst
    finally:
        inst.stop_all()


@pytest.fixture(scope="module")
def srv():
    inst = instance.Instance()
    try:
        yield inst
    finally:
        inst.stop_all()
