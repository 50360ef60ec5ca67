"""The firmware logic tests (tests/fw) again, under the real micropython binary."""

import re
import subprocess
from pathlib import Path

import pytest

from pumpctl.vboard import micropython_exe

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(p.stem for p in (ROOT / "tests" / "fw").glob("test_*.py"))


@pytest.mark.parametrize("module", MODULES)
def test_module_passes_under_micropython(module):
    r = subprocess.run([micropython_exe(), "-X", "heapsize=1M", str(ROOT / "tests" / "mpy_runner.py"), module],
                       capture_output=True, text=True, timeout=600)
    out = r.stdout + r.stderr
    m = re.search(r"^(\d+) passed, (\d+) failed$", r.stdout, re.M)
    assert m, out
    assert r.returncode == 0 and int(m.group(2)) == 0, out
    # every test the CPython run collects must have run here too
    import importlib

    mod = importlib.import_module(module)
    n = sum(1 for k in dir(mod) if k.startswith("test_") and callable(getattr(mod, k)))
    assert int(m.group(1)) == n, out
