"""The test modules marked `pytest.mark.micropython` again, under the real micropython binary."""

import re
import subprocess
from pathlib import Path

import pytest

from pumpctl.vboard import micropython_exe

ROOT = Path(__file__).resolve().parents[2]
RUNNER = str(ROOT / "tests" / "mpy_runner.py")
MODULES = subprocess.run([micropython_exe(), RUNNER, "--list"], capture_output=True, text=True,
                         check=True, timeout=60).stdout.split()


@pytest.mark.parametrize("module", MODULES)
def test_module_passes_under_micropython(module):
    r = subprocess.run([micropython_exe(), "-X", "heapsize=1M", RUNNER, module],
                       capture_output=True, text=True, timeout=600)
    out = r.stdout + r.stderr
    m = re.search(r"^(\d+) passed, (\d+) failed$", r.stdout, re.M)
    assert m, out
    assert r.returncode == 0 and int(m.group(2)) == 0, out
    # every test the CPython run collects must have run here too
    import importlib

    mod = importlib.import_module(module)
    assert mod.pytestmark == pytest.mark.micropython  # the runner's selection is pytest's marker
    n = sum(1 for k in dir(mod) if k.startswith("test_") and callable(getattr(mod, k)))
    assert int(m.group(1)) == n, out
