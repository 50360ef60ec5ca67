"""The source tree as a newcomer reads it: every module of firmware/, boards/ and host_tools/ opens with a
header of 1-5 lines (the reasoning is in docs/)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("firmware", "boards", "host_tools/pumpctl")
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


@pytest.mark.parametrize("path", _modules(*FOLDERS), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_module_has_a_short_header(path):
    src = path.read_text()
    if not src.strip() or path.name == "__init__.py" and header_lines(src) == 0 and len(src.split("\n")) < 3:
        return  # an empty package marker
    n = header_lines(src)
    assert 1 <= n <= MAX_HEADER_LINES, f"{path.relative_to(ROOT)}: a header of {n} lines (1-{MAX_HEADER_LINES})"
