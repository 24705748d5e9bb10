"""The shared harness (tests/proto/conftest.py), loaded by path.

`from conftest import ...` picks whichever conftest module pytest imported last,
which breaks as soon as another test directory has a conftest.py of its own; so the
replay suite loads the top-level one explicitly, once, under its own name."""
import importlib.util
import os
import sys

_PATH = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "conftest.py"))
_NAME = "postroom_proto_harness"

if _NAME in sys.modules:
    harness = sys.modules[_NAME]
else:
    _spec = importlib.util.spec_from_file_location(_NAME, _PATH)
    harness = importlib.util.module_from_spec(_spec)
    sys.modules[_NAME] = harness
    _spec.loader.exec_module(harness)

BIN = harness.BIN
PASSWORD = harness.PASSWORD
Postroom = harness.Postroom
