# itpump.MODULES is the one module list: app.py imports the package in its order, bench/heap7d.py measures
# it, and pumpctl flash and the frozen manifest ship the package folder it must match (CPython and
# micropython).
import os

import pytest

import itpump

pytestmark = pytest.mark.micropython

_PKG = itpump.__file__.rsplit("/", 1)[0]


def _files():
    return sorted(f[:-3] for f in os.listdir(_PKG) if f.endswith(".py") and f not in ("__init__.py", "app.py"))


def _imports(name):
    # the itpump modules a module imports at its top level
    got = []
    with open(_PKG + "/" + name + ".py") as f:
        lines = f.read().split("\n")
    i = 0
    while i < len(lines):
        ln = lines[i]
        if ln.startswith("from itpump import ("):
            i += 1
            while not lines[i].startswith(")"):
                got.append(lines[i].strip().rstrip(",").split(" ")[0])
                i += 1
        elif ln.startswith("from itpump import "):
            got += [n.strip().split(" ")[0] for n in ln[19:].split("#")[0].split(",")]
        elif ln.startswith("from itpump."):
            got.append(ln[12:].split(" ")[0])
        i += 1
    return [n for n in got if n in _files()]  # not VERSION, check_int ... of the package itself


def test_every_module_of_the_package_is_listed_once():
    assert sorted(itpump.MODULES) == _files(), (itpump.MODULES, _files())
    assert len(set(itpump.MODULES)) == len(itpump.MODULES)


def test_the_list_is_in_dependency_order():
    seen = []
    for m in itpump.MODULES:
        for dep in _imports(m):
            assert dep in seen, "%s imports %s, which the list loads after it" % (m, dep)
        seen.append(m)

