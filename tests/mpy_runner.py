# Runs the test modules marked `pytestmark = pytest.mark.micropython` under the real micropython binary:
#   micropython tests/mpy_runner.py [module ...]     (--list: print the marked modules; from any folder)
# Same test files as pytest collects under CPython: one suite, two interpreters.
import os
import sys


def _abspath(path):
    # micropython has no os.path: absolute and normalised by hand, so the test modules' __file__ (and the
    # paths they derive from it) hold whatever the cwd and however the runner was named
    parts = []
    for p in (("" if path.startswith("/") else os.getcwd() + "/") + path).split("/"):
        if p == "..":
            if parts:
                parts.pop()
        elif p and p != ".":
            parts.append(p)
    return "/" + "/".join(parts)


_here = _abspath(__file__ + "/..")
_root = _abspath(_here + "/..")
_MARK = "pytestmark = pytest.mark.micropython"


class _Mark:
    def __getattr__(self, name):
        return name


class _Pytest:
    mark = _Mark()


# the marker line needs a `pytest` to import; micropython has none
sys.modules["pytest"] = _Pytest()


def marked():
    # (module, folder) of every tests/<subject>/test_*.py whose source carries the marker line
    found = []
    for sub in sorted(os.listdir(_here)):
        d = _here + "/" + sub
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for f in sorted(names):
            if f.startswith("test_") and f.endswith(".py"):
                with open(d + "/" + f) as fh:
                    if any(line.strip() == _MARK for line in fh):
                        found.append((f[:-3], d))
    return found


def run_module(name):
    passed = failed = 0
    mod = __import__(name)
    names = sorted(n for n in dir(mod) if n.startswith("test_"))
    for n in names:
        fn = getattr(mod, n)
        if not callable(fn):
            continue
        try:
            fn()
            passed += 1
        except Exception as e:
            failed += 1
            print("FAIL %s.%s" % (name, n))
            sys.print_exception(e)
    print("%s: %d passed, %d failed" % (name, passed, failed))
    return passed, failed


def main():
    found = marked()
    if sys.argv[1:] == ["--list"]:
        for m, _ in found:
            print(m)
        return
    sys.path.insert(0, _root + "/firmware")
    sys.path.insert(0, _here + "/firmware")  # fakes, scratch
    for _, d in found:
        if d not in sys.path:
            sys.path.insert(0, d)
    mods = sys.argv[1:] or [m for m, _ in found]
    tp = tf = 0
    for m in mods:
        p, f = run_module(m)
        tp += p
        tf += f
    print("%d passed, %d failed" % (tp, tf))
    sys.exit(1 if tf or not tp else 0)


main()
