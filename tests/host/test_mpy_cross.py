"""Every firmware and board file compiles with mpy-cross for the RP2040 and RP2350 targets."""

import subprocess
from pathlib import Path

import pytest

from pumpctl.flash import mpy_cross_exe

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted(p for d in ("firmware", "boards") for p in (ROOT / d).rglob("*.py"))


def test_there_is_something_to_compile():
    assert any(p.name == "main.py" for p in SOURCES) and len(SOURCES) >= 5


@pytest.mark.parametrize("march", ["armv6m", "armv7emsp"])
def test_compiles(march, tmp_path):
    failures = []
    for src in SOURCES:
        out = tmp_path / (src.stem + ".mpy")
        r = subprocess.run([mpy_cross_exe(), f"-march={march}", "-o", str(out), str(src)],
                           capture_output=True, text=True)
        if r.returncode != 0 or not out.exists() or out.stat().st_size == 0:
            failures.append(f"{src.relative_to(ROOT)}: {r.stderr.strip()}")
        # .mpy header: 'M', version 6
        elif out.read_bytes()[:2] != b"M\x06":
            failures.append(f"{src.relative_to(ROOT)}: unexpected header {out.read_bytes()[:4]!r}")
    assert not failures, "\n".join(failures)
