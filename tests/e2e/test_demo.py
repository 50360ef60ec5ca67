"""`make demo` end to end (bench/demo.py): every scene runs and says what it must, so the demo a new user
types first cannot rot unseen."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_every_scene():
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "demo.py")], capture_output=True, text=True,
                       timeout=240, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = r.stdout
    assert "verified by SHA-256" in out  # flashed through mpremote
    assert '"code": "OCCLUSION"' in out and "acknowledged: OCCLUSION" in out  # the occlusion scene
    assert "bridging 323.0 uL" in out  # the drug change pushes the old line through first
    line = next(x for x in out.splitlines() if "the schedule asks" in x)
    assert "delivered 243.7" in line and "alarms none" in line, line  # a day on the schedule, within 1 %
