# Runs the firmware logic tests (tests/fw/test_*.py) under the real micropython binary:
#   micropython tests/mpy_runner.py [module ...]
# Same test files as pytest collects under CPython: one suite, two interpreters.
import os
import sys

_here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
_root = _here + "/.."
sys.path.insert(0, _root + "/firmware")
sys.path.insert(0, _here + "/fw")


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
    mods = sys.argv[1:] or sorted(f[:-3] for f in os.listdir(_here + "/fw") if f.startswith("test_")
                                  and f.endswith(".py"))
    tp = tf = 0
    for m in mods:
        p, f = run_module(m)
        tp += p
        tf += f
    print("%d passed, %d failed" % (tp, tf))
    sys.exit(1 if tf or not tp else 0)


main()
