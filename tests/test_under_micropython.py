"""The test modules marked `pytest.mark.micropython`, in whichever tests/<subject>/ folder, again under
the real micropython binary (tests/mpy_runner.py): the marker, not a folder, says a test runs there too."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pumpctl.vboard import micropython_exe

ROOT = Path(__file__).resolve().parents[1]
RUNNER = str(ROOT / "tests" / "mpy_runner.py")
MODULES = subprocess.run([micropython_exe(), RUNNER, "--list"], capture_output=True, text=True,
                         check=True, timeout=60).stdout.split()


def run_runner(*args, cwd=None):
    """(passed, failed, output) of the runner started with args, from cwd."""
    r = subprocess.run([micropython_exe(), "-X", "heapsize=1M", *args], capture_output=True, text=True,
                       timeout=600, cwd=cwd)
    out = r.stdout + r.stderr
    m = re.search(r"^(\d+) passed, (\d+) failed$", r.stdout, re.M)
    assert m, out
    assert r.returncode == 0 and int(m.group(2)) == 0, out
    return int(m.group(1)), out


def load(module):
    """The CPython module of that name, from whichever tests/<subject>/ holds it: pytest may have been
    given another folder, so its folder need not be on sys.path."""
    if module in sys.modules:
        return sys.modules[module]
    (path,) = ROOT.glob(f"tests/*/{module}.py")
    spec = importlib.util.spec_from_file_location(module, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[module] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("module", MODULES)
def test_module_passes_under_micropython(module):
    passed, out = run_runner(RUNNER, module)
    # every test the CPython run collects must have run here too
    mod = load(module)
    assert mod.pytestmark == pytest.mark.micropython  # the runner's selection is pytest's marker
    n = sum(1 for k in dir(mod) if k.startswith("test_") and callable(getattr(mod, k)))
    assert passed == n, out


@pytest.mark.parametrize("cwd, runner", [(ROOT, "tests/mpy_runner.py"), (ROOT / "tests" / "sim", "../mpy_runner.py"),
                                         (ROOT / "tests", "./mpy_runner.py")],
                         ids=["from-root", "from-tests-sim", "from-tests"])
def test_the_runner_works_from_any_folder(cwd, runner):
    # test_simhw finds the sim's devices from its own __file__: relative once the runner was named so
    passed, out = run_runner(runner, "test_simhw", cwd=cwd)
    assert passed > 0, out


def test_a_run_of_one_folder_checks_a_module_of_another():
    node = "tests/test_under_micropython.py::test_module_passes_under_micropython[test_simhw]"
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", node], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "1 passed" in r.stdout, r.stdout + r.stderr
