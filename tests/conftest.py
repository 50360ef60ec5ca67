"""Test setup: firmware/ and the interpreter-neutral fakes on sys.path, mocks of machine/rp2 on demand."""

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT / "firmware", ROOT / "tests" / "firmware"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

# pumpctl's host-side history (and any other user data) of a test run stays out of the user's folder
os.environ["ITPUMP_DATA_DIR"] = tempfile.mkdtemp(prefix="itpump-test-data-")

# MicroPython's gc reports heap figures; CPython's has no such calls. Under CPython the firmware's
# status op gets fixed stand-ins (the micropython run of the same tests sees the real heap).
import gc  # noqa: E402

if not hasattr(gc, "mem_free"):
    gc.mem_free = lambda: 200_000
    gc.mem_alloc = lambda: 10_000
