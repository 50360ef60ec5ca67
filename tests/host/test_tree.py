"""The source tree as a newcomer reads it: every module of firmware/, boards/, pumpctl, tests/ and bench/
opens with a header of 1-5 lines (the reasoning is in docs/), and no class creates an attribute its
__init__ did not."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("firmware", "boards", "host_tools/pumpctl", "tests", "bench")
MAX_HEADER_LINES = 5


def _modules(*folders):
    return sorted(p for f in folders for p in (ROOT / f).rglob("*.py") if "egg-info" not in str(p))


def header_lines(src: str) -> int:
    """Lines of the leading comment block (a #! line aside) plus the module docstring."""
    n = 0
    for line in src.split("\n"):
        if line.startswith("#!"):
            continue
        if not line.startswith("#"):
            break
        n += 1
    body = ast.parse(src).body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        n += body[0].end_lineno - body[0].lineno + 1
    return n


def test_the_header_count_reads_comments_and_docstrings():
    assert header_lines('"""One line."""\nimport os\n') == 1
    assert header_lines("#!/usr/bin/env python3\n# a\n# b\nimport os\n") == 2
    assert header_lines('# a\n"""b\n\nc\n"""\nx = 1\n') == 5
    assert header_lines("import os\n") == 0


def header_fault(src: str, name: str) -> str | None:
    """What is wrong with a module's header, or None (an empty package marker needs none)."""
    if not src.strip() or name == "__init__.py" and header_lines(src) == 0 and len(src.split("\n")) < 3:
        return None
    n = header_lines(src)
    return None if 1 <= n <= MAX_HEADER_LINES else f"a header of {n} lines (1-{MAX_HEADER_LINES})"


def test_the_header_check_fails_a_long_or_missing_header_in_every_folder():
    assert header_fault('"""One line."""\nimport os\n', "a.py") is None
    assert header_fault("# a\n# b\n# c\n" + '"""d\n\ne\n"""\n', "a.py") == "a header of 7 lines (1-5)"
    assert header_fault("import os\n", "a.py") == "a header of 0 lines (1-5)"
    assert header_fault("", "__init__.py") is None
    checked = {p.relative_to(ROOT).parts[0] for p in _modules(*FOLDERS)}
    assert checked == {"firmware", "boards", "host_tools", "tests", "bench"}


@pytest.mark.parametrize("path", _modules(*FOLDERS), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_module_has_a_short_header(path):
    fault = header_fault(path.read_text(), path.name)
    assert fault is None, f"{path.relative_to(ROOT)}: {fault}"


def _self_stores(fn) -> set[str]:
    got = set()
    for node in ast.walk(fn):
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
        for t in targets:
            for e in ast.walk(t):
                if isinstance(e, ast.Attribute) and isinstance(e.ctx, ast.Store) and \
                        isinstance(e.value, ast.Name) and e.value.id == "self":
                    got.add(e.attr)
    return got


def _classes(src: str) -> dict[str, ast.ClassDef]:
    return {c.name: c for c in ast.walk(ast.parse(src)) if isinstance(c, ast.ClassDef)}


def undeclared(src: str, others: dict[str, ast.ClassDef] | None = None) -> list[str]:
    """'Class.attr' for each attribute a method sets that neither the class body, __init__ (with the
    private methods it calls on self: a public one, reset() say, changes the state later and declares
    nothing) nor a base class (of this module, or by name in others) declares; and each getattr /
    hasattr on self, an attribute created on demand."""
    own = _classes(src)
    classes = {**(others or {}), **own}

    def declared(c: ast.ClassDef) -> set[str]:
        meths = {m.name: m for m in c.body if isinstance(m, ast.FunctionDef)}
        got = {t.id for s in c.body if isinstance(s, ast.Assign) for t in s.targets if isinstance(t, ast.Name)}
        todo, seen = ["__init__"], set()
        while todo:
            name = todo.pop()
            if name in seen or name not in meths:
                continue
            seen.add(name)
            got |= _self_stores(meths[name])
            todo += [n.func.attr for n in ast.walk(meths[name]) if isinstance(n, ast.Call) and
                     isinstance(n.func, ast.Attribute) and isinstance(n.func.value, ast.Name) and
                     n.func.value.id == "self" and n.func.attr.startswith("_")]
        for b in c.bases:
            name = b.id if isinstance(b, ast.Name) else b.attr if isinstance(b, ast.Attribute) else None
            if name in classes:
                got |= declared(classes[name])
        return got

    found = []
    for c in own.values():
        ok = declared(c)
        for m in c.body:
            if isinstance(m, ast.FunctionDef):
                found += [f"{c.name}.{a}" for a in sorted(_self_stores(m) - ok)]
        for n in ast.walk(c):
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in ("getattr", "hasattr") \
                    and n.args and isinstance(n.args[0], ast.Name) and n.args[0].id == "self" \
                    and isinstance(n.args[1], ast.Constant):
                found.append(f"{c.name}: {n.func.id}(self, {n.args[1].value!r})")
    return found


def test_the_check_finds_an_attribute_made_on_demand():
    src = ("class A:\n def __init__(self):\n  self.a = 0\n  self._reset()\n def _reset(self):\n  self.b = 0\n"
           " def later(self):\n  self.a = self.b = 1\n  self.c = 2\n  return getattr(self, 'd', 0)\n"
           "class B(A):\n def more(self):\n  self.a = 3\n")
    assert undeclared(src) == ["A.c", "A: getattr(self, 'd')"]
    assert undeclared("class C(m.A):\n def f(self):\n  self.a = 1\n", _classes(src)) == []
    assert undeclared("class D:\n def __init__(self):\n  self.reset()\n def reset(self):\n  self.e = 0\n") == ["D.e"]


FIRMWARE_CLASSES = {n: c for p in _modules("firmware", "boards") for n, c in _classes(p.read_text()).items()}


@pytest.mark.parametrize("path", _modules("firmware", "boards"), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_attribute_is_declared_by_init(path):
    rel = str(path.relative_to(ROOT))
    assert undeclared(path.read_text(), FIRMWARE_CLASSES) == [], rel


def test_the_rule_table_names_every_module_and_only_modules_that_exist():
    # docs/firmware.md's "rule | module" table is where a newcomer looks a rule up: it must name each
    # module of the package (app.py aside: the wiring above the table) and nothing the tree lacks
    text = (ROOT / "docs" / "firmware.md").read_text()
    rows = [ln for ln in text.split("\n") if ln.startswith("| ") and not ln.startswith("| rule")]
    named = set()
    for row in rows:
        cell = row.rstrip(" |").rsplit("|", 1)[1]
        for word in cell.replace("`", " ").replace(";", " ").replace(",", " ").split():
            if word.endswith(".py"):
                named.add(word[:-3])
    pkg = ROOT / "firmware" / "itpump"
    have = {p.stem for p in pkg.glob("*.py")} - {"app"}
    assert named - have - {"__init__"} == set(), "named in docs/firmware.md, not in firmware/itpump"
    assert have - named == set(), "modules docs/firmware.md's table does not name"


def foreign_private_writes(src: str) -> list[str]:
    """Each `x._name = ...` (x not self) outside a class that declares _name itself: a module writing
    another's private field (a class's own from_dict may fill a fresh instance of itself)."""
    tree = ast.parse(src)
    parent = {c: n for n in ast.walk(tree) for c in ast.iter_child_nodes(n)}
    found = []
    for n in ast.walk(tree):
        if not (isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store) and n.attr.startswith("_")
                and not n.attr.startswith("__")) or isinstance(n.value, ast.Name) and n.value.id == "self":
            continue
        q = n
        while q in parent and not isinstance(q, ast.ClassDef):
            q = parent[q]
        own = set()
        if isinstance(q, ast.ClassDef):
            for m in q.body:
                if isinstance(m, ast.FunctionDef):
                    own |= _self_stores(m)
        if n.attr not in own:
            found.append(f"{n.lineno}: {ast.unparse(n)}")
    return found


def test_the_check_finds_a_private_field_written_from_outside():
    src = ("class T:\n def __init__(self):\n  self._slot = 0\n @staticmethod\n def from_dict(d):\n"
           "  t = T()\n  t._slot = d\n  return t\n"
           "def restore(t, d):\n t._slot = d\n"
           "class Other:\n def f(self, t):\n  t._slot = 1\n")
    assert foreign_private_writes(src) == ["10: t._slot", "13: t._slot"]


@pytest.mark.parametrize("path", _modules("firmware", "boards"), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_writes_another_s_private_fields(path):
    assert foreign_private_writes(path.read_text()) == [], path.relative_to(ROOT)


def foreign_private_names(src: str) -> list[str]:
    """Each private name (_x) of another itpump module that this one imports or reads."""
    tree = ast.parse(src)
    mods = set()
    found = []
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("itpump"):
            for a in n.names:
                if a.name.startswith("_") and not a.name.startswith("__"):
                    found.append(f"from {n.module} import {a.name}")
                elif n.module == "itpump":
                    mods.add(a.asname or a.name)
    for n in ast.walk(tree):
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in mods \
                and n.attr.startswith("_") and not n.attr.startswith("__"):
            found.append(f"{n.value.id}.{n.attr}")
    return found


def test_the_check_finds_a_private_name_taken_from_another_module():
    src = "from itpump import protocol\nfrom itpump.ops import _save, op\nx = protocol._is_int(1) + protocol.MAX\n"
    assert foreign_private_names(src) == ["from itpump.ops import _save", "protocol._is_int"]


@pytest.mark.parametrize("path", _modules("firmware", "boards"), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_takes_another_s_private_names(path):
    assert foreign_private_names(path.read_text()) == [], path.relative_to(ROOT)


def test_the_documents_name_only_documents_the_tree_has():
    # a newcomer has the tree alone: a document named by README.md or docs/ must be in it
    missing = []
    for doc in [ROOT / "README.md", ROOT / "boards" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for name in sorted(set(re.findall(r"[\w./-]+\.md\b", doc.read_text()))):
            if not any((base / name).is_file() for base in (ROOT, ROOT / "docs", doc.parent)):
                missing.append(f"{doc.relative_to(ROOT)}: {name}")
    assert missing == []
